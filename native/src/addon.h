// Per-environment state of the addon.
#pragma once

#include <napi.h>

namespace vigil {

struct AddonData {
  Napi::FunctionReference bpfObject;  // the BpfObject constructor, to recognise instances
};

}  // namespace vigil
