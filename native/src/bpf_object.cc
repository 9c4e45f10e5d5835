#include "bpf_object.h"

#include <bpf/btf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "addon.h"
#include "errors.h"

namespace vigil {
namespace {

size_t RoundUp8(size_t n) { return (n + 7) & ~size_t{7}; }

std::string StringArg(const Napi::CallbackInfo& info, size_t i, const std::string& op, const char* what) {
  if (!info[i].IsString()) ThrowArgument(info.Env(), op + ": " + what + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

Napi::Buffer<uint8_t> BufferArg(const Napi::CallbackInfo& info, size_t i, const std::string& op, const char* what) {
  if (!info[i].IsBuffer()) ThrowArgument(info.Env(), op + ": " + what + " must be a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

uint32_t U32Arg(const Napi::CallbackInfo& info, size_t i, const std::string& op, const char* what) {
  double v = info[i].IsNumber() ? info[i].As<Napi::Number>().DoubleValue() : -1;
  if (!(v >= 0 && v <= 4294967295.0 && v == static_cast<double>(static_cast<uint32_t>(v))))
    ThrowArgument(info.Env(), op + ": " + what + " must be an integer from 0 to 2^32-1");
  return static_cast<uint32_t>(v);
}

// A section naming its target ("tp/syscalls/sys_enter_getpid", "tp_btf/sched_process_exec"),
// not a generic one ("tp", "uprobe") whose program is attached to explicit targets, nor a
// cgroup one ("cgroup/connect4"), whose cgroup is given to attachCgroup.
bool HasTarget(const struct bpf_program* prog) {
  const char* sec = bpf_program__section_name(prog);
  return strchr(sec, '/') != nullptr && strncmp(sec, "cgroup", 6) != 0;
}

bool IsPerCpu(enum bpf_map_type type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

const struct btf_type* SkipModifiers(const struct btf* btf, __u32* id) {
  const struct btf_type* t = btf__type_by_id(btf, *id);
  while (t != nullptr && (btf_is_typedef(t) || btf_is_mod(t))) {
    *id = t->type;
    t = btf__type_by_id(btf, *id);
  }
  return t;
}

// A C-like name for a member's type: 'u32', 's64', 'char', 'char[16]', 'char[]',
// 'struct vigil_process', 'enum vigil_record_kind', 'u8*', typedefs resolved.
std::string TypeName(const struct btf* btf, __u32 id) {
  const struct btf_type* t = SkipModifiers(btf, &id);
  if (t == nullptr || id == 0) return "void";
  std::string name = btf__name_by_offset(btf, t->name_off);
  switch (btf_kind(t)) {
    case BTF_KIND_INT:
      if (name == "char") return "char";
      if (name == "_Bool") return "bool";
      return ((btf_int_encoding(t) & BTF_INT_SIGNED) ? "s" : "u") + std::to_string(t->size * 8);
    case BTF_KIND_FLOAT:
      return "f" + std::to_string(t->size * 8);
    case BTF_KIND_ENUM:
    case BTF_KIND_ENUM64:
      return name.empty() ? "enum" : "enum " + name;
    case BTF_KIND_STRUCT:
      return name.empty() ? "struct" : "struct " + name;
    case BTF_KIND_UNION:
      return name.empty() ? "union" : "union " + name;
    case BTF_KIND_PTR:
      return TypeName(btf, t->type) + "*";
    case BTF_KIND_ARRAY: {
      // int a[2][3] is an array of 2 arrays of 3: collect the dimensions outermost first.
      std::string dims;
      while (t != nullptr && btf_is_array(t)) {
        const struct btf_array* a = btf_array(t);
        dims += a->nelems != 0 ? "[" + std::to_string(a->nelems) + "]" : "[]";
        id = a->type;
        t = SkipModifiers(btf, &id);
      }
      return TypeName(btf, id) + dims;
    }
    default:
      return "void";
  }
}

}  // namespace

Napi::Function BpfObject::Define(Napi::Env env) {
  return DefineClass(env, "BpfObject",
                     {
                         InstanceMethod<&BpfObject::SetRodata>("setRodata"),
                         InstanceMethod<&BpfObject::SetMapMaxEntries>("setMapMaxEntries"),
                         InstanceMethod<&BpfObject::SetAutoload>("setAutoload"),
                         InstanceMethod<&BpfObject::Load>("load"),
                         InstanceMethod<&BpfObject::Attach>("attach"),
                         InstanceMethod<&BpfObject::AttachTracepoint>("attachTracepoint"),
                         InstanceMethod<&BpfObject::AttachUprobe>("attachUprobe"),
                         InstanceMethod<&BpfObject::AttachCgroup>("attachCgroup"),
                         InstanceMethod<&BpfObject::AttachTarget>("attachTarget"),
                         InstanceMethod<&BpfObject::Detach>("detach"),
                         InstanceMethod<&BpfObject::Programs>("programs"),
                         InstanceMethod<&BpfObject::MapInfo>("mapInfo"),
                         InstanceMethod<&BpfObject::MapLookup>("mapLookup"),
                         InstanceMethod<&BpfObject::MapUpdate>("mapUpdate"),
                         InstanceMethod<&BpfObject::MapDelete>("mapDelete"),
                         InstanceMethod<&BpfObject::MapKeys>("mapKeys"),
                         InstanceMethod<&BpfObject::BtfStruct>("btfStruct"),
                         InstanceMethod<&BpfObject::PinLinks>("pinLinks"),
                         InstanceMethod<&BpfObject::Close>("close"),
                     });
}

BpfObject* BpfObject::From(Napi::Value value) {
  if (!value.IsObject()) return nullptr;
  Napi::Object object = value.As<Napi::Object>();
  if (!object.InstanceOf(value.Env().GetInstanceData<AddonData>()->bpfObject.Value())) return nullptr;
  return Unwrap(object);
}

BpfObject::BpfObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfObject>(info) {
  std::string path = StringArg(info, 0, "new BpfObject", "path");
  size_t slash = path.rfind('/');
  file_ = slash == std::string::npos ? path : path.substr(slash + 1);
  LibbpfLog log;
  obj_ = bpf_object__open_file(path.c_str(), nullptr);
  if (obj_ == nullptr) {
    int err = errno;
    ThrowErrno(info.Env(), "open " + path, err, "", log.Release());
  }
}

BpfObject::~BpfObject() { Destroy(); }

void BpfObject::DestroyLink(struct bpf_link* link) {
  // A pinned link stays attached after its last descriptor closes: unpin first.
  if (bpf_link__pin_path(link) != nullptr) bpf_link__unpin(link);
  bpf_link__destroy(link);
}

void BpfObject::Destroy() {
  for (auto& [prog, link] : links_) DestroyLink(link);
  links_.clear();
  for (auto& [id, link] : targetLinks_) DestroyLink(link);
  targetLinks_.clear();
  bpf_object__close(obj_);
  obj_ = nullptr;
}

void BpfObject::CheckOpen(Napi::Env env, const std::string& op) const {
  if (obj_ == nullptr) ThrowErrno(env, op, EBADF, file_ + " is closed");
}

struct bpf_map* BpfObject::FindMap(Napi::Env env, const std::string& op, const std::string& name,
                                   bool needLoaded) const {
  CheckOpen(env, op);
  struct bpf_map* map = bpf_object__find_map_by_name(obj_, name.c_str());
  if (map == nullptr) ThrowErrno(env, op, ENOENT, "no map named '" + name + "' in " + file_);
  if (needLoaded && bpf_map__fd(map) < 0) ThrowErrno(env, op, EINVAL, file_ + " is not loaded");
  return map;
}

size_t BpfObject::ValueBytes(const struct bpf_map* map) {
  size_t size = bpf_map__value_size(map);
  // The kernel copies one value per possible CPU, each padded to 8 bytes.
  return IsPerCpu(bpf_map__type(map)) ? RoundUp8(size) * libbpf_num_possible_cpus() : size;
}

void BpfObject::CheckSize(Napi::Env env, const std::string& op, const char* what, size_t got, size_t want) const {
  if (got != want) {
    ThrowErrno(env, op, EINVAL,
               std::string(what) + " is " + std::to_string(got) + " bytes, the map's is " + std::to_string(want));
  }
}

void BpfObject::SetRodata(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "setRodata", "name");
  std::string op = "setRodata " + name;
  Napi::Buffer<uint8_t> value = BufferArg(info, 1, op, "value");
  CheckOpen(env, op);

  struct bpf_map* rodata = nullptr;
  struct bpf_map* map;
  bpf_object__for_each_map(map, obj_) {
    // libbpf names the map of the .rodata section "<object prefix>.rodata".
    const char* mapName = bpf_map__name(map);
    size_t len = strlen(mapName);
    if (bpf_map__is_internal(map) && len >= 7 && strcmp(mapName + len - 7, ".rodata") == 0) rodata = map;
  }
  const struct btf* btf = bpf_object__btf(obj_);
  int secId = btf != nullptr ? btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC) : -ENOENT;
  if (rodata == nullptr || secId < 0) ThrowErrno(env, op, ENOENT, file_ + " has no .rodata section");
  if (bpf_map__fd(rodata) >= 0) ThrowErrno(env, op, EBUSY, file_ + " is already loaded");

  const struct btf_type* sec = btf__type_by_id(btf, secId);
  const struct btf_var_secinfo* vsi = btf_var_secinfos(sec);
  for (int i = 0; i < btf_vlen(sec); i++, vsi++) {
    const struct btf_type* var = btf__type_by_id(btf, vsi->type);
    if (name != btf__name_by_offset(btf, var->name_off)) continue;
    if (value.Length() != vsi->size) {
      ThrowErrno(env, op, EINVAL,
                 "value is " + std::to_string(value.Length()) + " bytes, the variable is " + std::to_string(vsi->size));
    }
    size_t size;
    const auto* initial = static_cast<const uint8_t*>(bpf_map__initial_value(rodata, &size));
    // libbpf 1.1 hands the section out read-only: patch a copy and set it back.
    std::vector<uint8_t> section(initial, initial + size);
    memcpy(section.data() + vsi->offset, value.Data(), vsi->size);
    if (bpf_map__set_initial_value(rodata, section.data(), size) != 0) ThrowErrno(env, op, errno);
    return;
  }
  ThrowErrno(env, op, ENOENT, "no const volatile variable named '" + name + "' in " + file_);
}

void BpfObject::SetMapMaxEntries(const Napi::CallbackInfo& info) {
  std::string name = StringArg(info, 0, "setMapMaxEntries", "map");
  std::string op = "setMapMaxEntries " + name;
  uint32_t n = U32Arg(info, 1, op, "maxEntries");
  struct bpf_map* map = FindMap(info.Env(), op, name, false);
  int err = bpf_map__set_max_entries(map, n);
  if (err != 0) ThrowErrno(info.Env(), op, err, err == -EBUSY ? file_ + " is already loaded" : "");
}

void BpfObject::SetAutoload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "setAutoload", "program");
  std::string op = "setAutoload " + name;
  if (!info[1].IsBoolean()) ThrowArgument(env, op + ": autoload must be a boolean");
  CheckOpen(env, op);
  struct bpf_program* prog = bpf_object__find_program_by_name(obj_, name.c_str());
  if (prog == nullptr) ThrowErrno(env, op, ENOENT, "no program named '" + name + "' in " + file_);
  if (loaded_) ThrowErrno(env, op, EBUSY, file_ + " is already loaded");
  int err = bpf_program__set_autoload(prog, info[1].As<Napi::Boolean>().Value());
  if (err != 0) ThrowErrno(env, op, err);
}

void BpfObject::Load(const Napi::CallbackInfo& info) {
  std::string op = "load " + file_;
  CheckOpen(info.Env(), op);
  LibbpfLog log;
  int err = bpf_object__load(obj_);
  if (err != 0) ThrowErrno(info.Env(), op, err, "", log.Release());
  loaded_ = true;
}

void BpfObject::AttachProgram(Napi::Env env, struct bpf_program* prog) {
  for (auto& [attached, link] : links_) {
    if (attached == prog) return;
  }
  if (!HasTarget(prog)) {
    ThrowErrno(env, std::string("attach ") + bpf_program__name(prog) + " (" + bpf_program__section_name(prog) + ")",
               EINVAL, "its section names no target: attach it with attachTracepoint or attachUprobe");
  }
  LibbpfLog log;
  struct bpf_link* link = bpf_program__attach(prog);
  if (link == nullptr) {
    int err = errno;
    ThrowErrno(env,
               std::string("attach ") + bpf_program__name(prog) + " (" + bpf_program__section_name(prog) + ")",
               err, "", log.Release());
  }
  try {
    PinLink(env, std::string("attach ") + bpf_program__name(prog), link, bpf_program__name(prog));
  } catch (...) {
    bpf_link__destroy(link);
    throw;
  }
  links_.emplace_back(prog, link);
}

void BpfObject::PinLink(Napi::Env env, const std::string& op, struct bpf_link* link, const std::string& name) {
  if (pinDir_.empty() || bpf_link__pin_path(link) != nullptr) return;
  std::string path = pinDir_ + "/" + name;
  LibbpfLog log;
  int err = bpf_link__pin(link, path.c_str());
  if (err != 0) ThrowErrno(env, op + ": pin " + path, err, "", log.Release());
}

struct bpf_program* BpfObject::LoadedProgram(Napi::Env env, const std::string& op, const std::string& name) const {
  CheckOpen(env, op);
  struct bpf_program* prog = bpf_object__find_program_by_name(obj_, name.c_str());
  if (prog == nullptr) ThrowErrno(env, op, ENOENT, "no program named '" + name + "' in " + file_);
  if (bpf_program__fd(prog) < 0) ThrowErrno(env, op, EINVAL, file_ + " is not loaded");
  return prog;
}

uint32_t BpfObject::AddTargetLink(struct bpf_link* link) {
  uint32_t id = nextLinkId_++;
  targetLinks_.emplace(id, link);
  return id;
}

uint32_t BpfObject::AddPinnedTargetLink(Napi::Env env, const std::string& op, struct bpf_link* link) {
  try {
    PinLink(env, op, link, "link-" + std::to_string(nextLinkId_));
  } catch (...) {
    bpf_link__destroy(link);
    throw;
  }
  return AddTargetLink(link);
}

void BpfObject::PinLinks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir = StringArg(info, 0, "pinLinks", "dir");
  std::string op = "pinLinks " + dir;
  CheckOpen(env, op);
  if (dir.empty() || dir[0] != '/') ThrowArgument(env, op + ": dir must be an absolute path");
  pinDir_ = dir;
  for (auto& [prog, link] : links_) PinLink(env, op, link, bpf_program__name(prog));
  for (auto& [id, link] : targetLinks_) PinLink(env, op, link, "link-" + std::to_string(id));
}

void BpfObject::Attach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    std::string name = StringArg(info, 0, "attach", "programName");
    AttachProgram(env, LoadedProgram(env, "attach " + name, name));
    return;
  }
  CheckOpen(env, "attach");
  size_t before = links_.size();
  try {
    struct bpf_program* prog;
    bpf_object__for_each_program(prog, obj_) {
      if (!bpf_program__autoload(prog) || !bpf_program__autoattach(prog) || !HasTarget(prog)) continue;
      if (bpf_program__fd(prog) < 0) ThrowErrno(env, "attach", EINVAL, file_ + " is not loaded");
      AttachProgram(env, prog);
    }
  } catch (...) {
    // All or nothing: detach what this call attached.
    for (size_t i = before; i < links_.size(); i++) DestroyLink(links_[i].second);
    links_.resize(before);
    throw;
  }
}

Napi::Value BpfObject::AttachTracepoint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "attachTracepoint", "program");
  std::string category = StringArg(info, 1, "attachTracepoint " + name, "category");
  std::string event = StringArg(info, 2, "attachTracepoint " + name, "name");
  std::string op = "attachTracepoint " + name + " " + category + ":" + event;
  uint32_t cookie = U32Arg(info, 3, op, "cookie");
  struct bpf_program* prog = LoadedProgram(env, op, name);
  LIBBPF_OPTS(bpf_tracepoint_opts, opts, .bpf_cookie = cookie);
  LibbpfLog log;
  struct bpf_link* link = bpf_program__attach_tracepoint_opts(prog, category.c_str(), event.c_str(), &opts);
  if (link == nullptr) {
    int err = errno;
    ThrowErrno(env, op, err, "", log.Release());
  }
  return Napi::Number::New(env, AddPinnedTargetLink(env, op, link));
}

Napi::Value BpfObject::AttachUprobe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "attachUprobe", "program");
  std::string binary = StringArg(info, 1, "attachUprobe " + name, "binaryPath");
  std::string symbol = StringArg(info, 2, "attachUprobe " + name, "symbol");
  std::string op = "attachUprobe " + name + " " + binary + ":" + symbol;
  if (!info[3].IsObject()) ThrowArgument(env, op + ": opts must be an object");
  Napi::Object opts = info[3].As<Napi::Object>();
  Napi::Value retprobe = opts.Get("retprobe");
  if (!retprobe.IsBoolean()) ThrowArgument(env, op + ": opts.retprobe must be a boolean");
  double cookie = opts.Get("cookie").IsNumber() ? opts.Get("cookie").As<Napi::Number>().DoubleValue() : -1;
  if (!(cookie >= 0 && cookie <= 4294967295.0 && cookie == static_cast<double>(static_cast<uint32_t>(cookie))))
    ThrowArgument(env, op + ": opts.cookie must be an integer from 0 to 2^32-1");
  int pid = -1;  // every process
  Napi::Value pidValue = opts.Get("pid");
  if (!pidValue.IsUndefined()) {
    double v = pidValue.IsNumber() ? pidValue.As<Napi::Number>().DoubleValue() : -1;
    if (!(v >= 0 && v <= 2147483647.0 && v == static_cast<double>(static_cast<int>(v))))
      ThrowArgument(env, op + ": opts.pid must be an integer from 0 to 2^31-1");
    pid = static_cast<int>(v);
  }
  // A USDT probe is placed by its file offset (and may have a semaphore), not by a symbol.
  auto offsetOpt = [&](const char* key) -> size_t {
    Napi::Value v = opts.Get(key);
    if (v.IsUndefined()) return 0;
    double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0 && d <= 9007199254740991.0 && d == static_cast<double>(static_cast<uint64_t>(d))))
      ThrowArgument(env, op + ": opts." + key + " must be a non-negative integer");
    return static_cast<size_t>(d);
  };
  size_t offset = offsetOpt("offset");
  size_t refCtrOffset = offsetOpt("refCtrOffset");
  struct bpf_program* prog = LoadedProgram(env, op, name);
  LIBBPF_OPTS(bpf_uprobe_opts, uopts, .ref_ctr_offset = refCtrOffset, .bpf_cookie = static_cast<uint32_t>(cookie),
              .retprobe = retprobe.As<Napi::Boolean>().Value(), .func_name = symbol.empty() ? nullptr : symbol.c_str());
  LibbpfLog log;
  struct bpf_link* link = bpf_program__attach_uprobe_opts(prog, pid, binary.c_str(), offset, &uopts);
  if (link == nullptr) {
    int err = errno;
    ThrowErrno(env, op, err, "", log.Release());
  }
  return Napi::Number::New(env, AddPinnedTargetLink(env, op, link));
}

Napi::Value BpfObject::AttachCgroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "attachCgroup", "program");
  std::string cgroup = StringArg(info, 1, "attachCgroup " + name, "cgroupPath");
  std::string op = "attachCgroup " + name + " " + cgroup;
  struct bpf_program* prog = LoadedProgram(env, op, name);
  int fd = open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) ThrowErrno(env, op, errno, "cannot open the cgroup directory");
  LibbpfLog log;
  struct bpf_link* link = bpf_program__attach_cgroup(prog, fd);
  int err = errno;
  close(fd);  // the link holds the cgroup
  if (link == nullptr) ThrowErrno(env, op, err, "", log.Release());
  return Napi::Number::New(env, AddPinnedTargetLink(env, op, link));
}

Napi::Value BpfObject::AttachTarget(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "attachTarget", "program");
  struct bpf_program* prog = LoadedProgram(env, "attachTarget " + name, name);
  std::string op = std::string("attachTarget ") + name + " (" + bpf_program__section_name(prog) + ")";
  if (!HasTarget(prog)) ThrowErrno(env, op, EINVAL, "its section names no target");
  LibbpfLog log;
  struct bpf_link* link = bpf_program__attach(prog);
  if (link == nullptr) {
    int err = errno;
    ThrowErrno(env, op, err, "", log.Release());
  }
  return Napi::Number::New(env, AddPinnedTargetLink(env, op, link));
}

void BpfObject::Detach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id = U32Arg(info, 0, "detach", "linkId");
  std::string op = "detach " + std::to_string(id);
  CheckOpen(env, op);
  auto it = targetLinks_.find(id);
  if (it == targetLinks_.end()) ThrowErrno(env, op, ENOENT, "no link with this id in " + file_);
  DestroyLink(it->second);
  targetLinks_.erase(it);
}

Napi::Value BpfObject::Programs(const Napi::CallbackInfo& info) {
  CheckOpen(info.Env(), "programs");
  Napi::Array names = Napi::Array::New(info.Env());
  struct bpf_program* prog;
  uint32_t i = 0;
  bpf_object__for_each_program(prog, obj_) names.Set(i++, bpf_program__name(prog));
  return names;
}

Napi::Value BpfObject::MapInfo(const Napi::CallbackInfo& info) {
  std::string name = StringArg(info, 0, "mapInfo", "map");
  struct bpf_map* map = FindMap(info.Env(), "mapInfo " + name, name, false);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("type", static_cast<uint32_t>(bpf_map__type(map)));
  out.Set("keySize", bpf_map__key_size(map));
  out.Set("valueSize", bpf_map__value_size(map));
  out.Set("maxEntries", bpf_map__max_entries(map));
  return out;
}

Napi::Value BpfObject::MapLookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "mapLookup", "map");
  std::string op = "mapLookup " + name;
  Napi::Buffer<uint8_t> key = BufferArg(info, 1, op, "key");
  struct bpf_map* map = FindMap(env, op, name, true);
  CheckSize(env, op, "key", key.Length(), bpf_map__key_size(map));
  size_t size = ValueBytes(map);
  Napi::Buffer<uint8_t> value = Napi::Buffer<uint8_t>::New(env, size);
  int err = bpf_map__lookup_elem(map, key.Data(), key.Length(), value.Data(), size, 0);
  if (err == -ENOENT) return env.Null();
  if (err != 0) ThrowErrno(env, op, err);
  return value;
}

void BpfObject::MapUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "mapUpdate", "map");
  std::string op = "mapUpdate " + name;
  Napi::Buffer<uint8_t> key = BufferArg(info, 1, op, "key");
  Napi::Buffer<uint8_t> value = BufferArg(info, 2, op, "value");
  uint32_t flags = info.Length() > 3 && !info[3].IsUndefined() ? U32Arg(info, 3, op, "flags") : 0;
  struct bpf_map* map = FindMap(env, op, name, true);
  CheckSize(env, op, "key", key.Length(), bpf_map__key_size(map));
  CheckSize(env, op, "value", value.Length(), ValueBytes(map));
  int err = bpf_map__update_elem(map, key.Data(), key.Length(), value.Data(), value.Length(), flags);
  if (err != 0) ThrowErrno(env, op, err);
}

Napi::Value BpfObject::MapDelete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "mapDelete", "map");
  std::string op = "mapDelete " + name;
  Napi::Buffer<uint8_t> key = BufferArg(info, 1, op, "key");
  struct bpf_map* map = FindMap(env, op, name, true);
  CheckSize(env, op, "key", key.Length(), bpf_map__key_size(map));
  int err = bpf_map__delete_elem(map, key.Data(), key.Length(), 0);
  if (err == -ENOENT) return Napi::Boolean::New(env, false);
  if (err != 0) ThrowErrno(env, op, err);
  return Napi::Boolean::New(env, true);
}

Napi::Value BpfObject::MapKeys(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "mapKeys", "map");
  std::string op = "mapKeys " + name;
  struct bpf_map* map = FindMap(env, op, name, true);
  size_t keySize = bpf_map__key_size(map);
  uint32_t max = bpf_map__max_entries(map);
  Napi::Array keys = Napi::Array::New(env);
  std::vector<uint8_t> prev(keySize), next(keySize);
  // A key deleted while we iterate makes the kernel restart from the first
  // key; the bound keeps that from looping forever.
  for (uint32_t i = 0; i < max; i++) {
    int err = bpf_map__get_next_key(map, i == 0 ? nullptr : prev.data(), next.data(), keySize);
    if (err == -ENOENT) break;
    if (err != 0) ThrowErrno(env, op, err);
    keys.Set(i, Napi::Buffer<uint8_t>::Copy(env, next.data(), keySize));
    prev.swap(next);
  }
  return keys;
}

Napi::Value BpfObject::BtfStruct(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "btfStruct", "name");
  std::string op = "btfStruct " + name;
  CheckOpen(env, op);
  const struct btf* btf = bpf_object__btf(obj_);
  if (btf == nullptr) ThrowErrno(env, op, ENOENT, file_ + " has no BTF");
  int id = btf__find_by_name_kind(btf, name.c_str(), BTF_KIND_STRUCT);
  if (id < 0) ThrowErrno(env, op, ENOENT, "no struct named '" + name + "' in the BTF of " + file_);

  const struct btf_type* t = btf__type_by_id(btf, id);
  const struct btf_member* m = btf_members(t);
  Napi::Array members = Napi::Array::New(env, btf_vlen(t));
  for (int i = 0; i < btf_vlen(t); i++, m++) {
    const char* memberName = btf__name_by_offset(btf, m->name_off);
    if (btf_member_bitfield_size(t, i) != 0 || btf_member_bit_offset(t, i) % 8 != 0) {
      ThrowErrno(env, op, EINVAL, std::string("member '") + memberName + "' is a bitfield, which records must not use");
    }
    __s64 size = btf__resolve_size(btf, m->type);  // 0 for a flexible array member
    if (size < 0) ThrowErrno(env, op, static_cast<int>(-size), std::string("member '") + memberName + "'");
    Napi::Object member = Napi::Object::New(env);
    member.Set("name", memberName);
    member.Set("offset", btf_member_bit_offset(t, i) / 8);
    member.Set("size", static_cast<double>(size));
    member.Set("type", TypeName(btf, m->type));
    members.Set(i, member);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("size", t->size);
  out.Set("members", members);
  return out;
}

void BpfObject::Close(const Napi::CallbackInfo&) { Destroy(); }

int BpfObject::DupMapFd(Napi::Env env, const std::string& op, const std::string& name, enum bpf_map_type type) {
  struct bpf_map* map = FindMap(env, op, name, true);
  if (bpf_map__type(map) != type) {
    const char* is = libbpf_bpf_map_type_str(bpf_map__type(map));
    const char* want = libbpf_bpf_map_type_str(type);
    ThrowErrno(env, op, EINVAL, "map '" + name + "' is a " + (is ? is : "?") + " map, not a " + (want ? want : "?") + " one");
  }
  int fd = fcntl(bpf_map__fd(map), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) ThrowErrno(env, op, errno);
  return fd;
}

}  // namespace vigil
