// llama.cpp's names for a decoder block's linear layers, shared by the GGUF
// writer and reader ("blk.N." + name + ".weight").
#pragma once

#include "model/llama_model.h"

namespace gptqtool {

// "attn_q", "ffn_down", ...; "" for Phi-3's fused layers and the shared
// expert of a mixture, which no GGUF this tool writes or reads holds (both
// refuse such models first).
inline const char *gguf_slot_name(LinearSlot slot) {
  switch (slot) {
    case LinearSlot::Q: return "attn_q";
    case LinearSlot::K: return "attn_k";
    case LinearSlot::V: return "attn_v";
    case LinearSlot::O: return "attn_output";
    case LinearSlot::Gate: return "ffn_gate";
    case LinearSlot::Up: return "ffn_up";
    case LinearSlot::Down: return "ffn_down";
    case LinearSlot::Qkv:
    case LinearSlot::GateUp:
    case LinearSlot::SharedGate:
    case LinearSlot::SharedUp:
    case LinearSlot::SharedDown: break;
  }
  return "";
}

}  // namespace gptqtool
