// BpfObject: one BPF ELF object (bpf_object) and the links of its attached programs.
#pragma once

#include <bpf/libbpf.h>
#include <napi.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace vigil {

class BpfObject : public Napi::ObjectWrap<BpfObject> {
 public:
  static Napi::Function Define(Napi::Env env);
  // The BpfObject wrapped by `value`, or nullptr if it is not one.
  static BpfObject* From(Napi::Value value);

  explicit BpfObject(const Napi::CallbackInfo& info);
  ~BpfObject() override;

  // A new file descriptor for the loaded map `name` of type `type`, owned by
  // the caller, so a reader outlives close() of this object. Throws like mapInfo.
  int DupMapFd(Napi::Env env, const std::string& op, const std::string& name, enum bpf_map_type type);

 private:
  void SetRodata(const Napi::CallbackInfo& info);
  void SetMapMaxEntries(const Napi::CallbackInfo& info);
  void SetAutoload(const Napi::CallbackInfo& info);
  void Load(const Napi::CallbackInfo& info);
  void Attach(const Napi::CallbackInfo& info);
  Napi::Value AttachTracepoint(const Napi::CallbackInfo& info);
  Napi::Value AttachUprobe(const Napi::CallbackInfo& info);
  Napi::Value AttachCgroup(const Napi::CallbackInfo& info);
  Napi::Value AttachTarget(const Napi::CallbackInfo& info);
  void Detach(const Napi::CallbackInfo& info);
  Napi::Value Programs(const Napi::CallbackInfo& info);
  Napi::Value MapInfo(const Napi::CallbackInfo& info);
  Napi::Value MapLookup(const Napi::CallbackInfo& info);
  void MapUpdate(const Napi::CallbackInfo& info);
  Napi::Value MapDelete(const Napi::CallbackInfo& info);
  Napi::Value MapKeys(const Napi::CallbackInfo& info);
  Napi::Value BtfStruct(const Napi::CallbackInfo& info);
  void PinLinks(const Napi::CallbackInfo& info);
  void Close(const Napi::CallbackInfo& info);

  void CheckOpen(Napi::Env env, const std::string& op) const;
  struct bpf_map* FindMap(Napi::Env env, const std::string& op, const std::string& name, bool needLoaded) const;
  // Bytes of one value as the map syscalls see it (all CPUs for per-CPU maps).
  static size_t ValueBytes(const struct bpf_map* map);
  void CheckSize(Napi::Env env, const std::string& op, const char* what, size_t got, size_t want) const;
  void AttachProgram(Napi::Env env, struct bpf_program* prog);
  // The loaded program `name`; throws ENOENT / EINVAL (not loaded) naming `op`.
  struct bpf_program* LoadedProgram(Napi::Env env, const std::string& op, const std::string& name) const;
  // Keeps a link of attachTracepoint/attachUprobe and returns its id.
  uint32_t AddTargetLink(struct bpf_link* link);
  // Pins a new link of attachTracepoint/attachUprobe (see PinLink), then keeps it;
  // on failure destroys it and throws.
  uint32_t AddPinnedTargetLink(Napi::Env env, const std::string& op, struct bpf_link* link);
  // Pins `link` as pinDir_/name when pinLinks() set a directory; throws naming `op`.
  void PinLink(Napi::Env env, const std::string& op, struct bpf_link* link, const std::string& name);
  // Removes a link's pin (if any) and detaches it.
  static void DestroyLink(struct bpf_link* link);
  void Destroy();

  struct bpf_object* obj_ = nullptr;
  std::string file_;  // basename of the path, for messages
  bool loaded_ = false;  // load() succeeded
  std::vector<std::pair<const struct bpf_program*, struct bpf_link*>> links_;  // attach()
  std::map<uint32_t, struct bpf_link*> targetLinks_;  // attachTracepoint/attachUprobe, by link id
  uint32_t nextLinkId_ = 1;
  std::string pinDir_;  // pinLinks(): where links are pinned in bpffs; empty: not pinned
};

}  // namespace vigil
