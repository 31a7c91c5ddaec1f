// The sums behind the scale searches of GGUF blocks (zero-form Q4_0, Q5_0,
// Q8_0, Q6_K's sub-blocks; min-form Q4_1, Q5_1, Q4_K's and Q5_K's
// sub-blocks: group_params.h, super_block_params.h) for many candidate
// scales at once: each SIMD lane takes one candidate through the block's
// columns in order, with the scalar Quantizer's operations in its order, so
// every level gives the very bits the plain loop gives (and the search picks
// the same scale). Candidates must be finite and nonzero.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace gptq::cpu {

// One block: weights w and Hessian-diagonal weights h over len columns; the
// code of 0 (z) and the largest code.
template <typename T>
struct ZeroFormBlock {
  const T *w;
  const T *h;
  int64_t len;
  T z, maxq;
};

// The distinct candidates of one block's search, each with an integer of
// the caller's (its position in a list): up to kCapacity values, found and
// added in constant time where a scan of the list made the search's
// bookkeeping cost more than its sums. Values are compared by their bits
// (candidates are fp16 values, never NaN).
// GCC cannot see that a slot's key is read only once the slot is used (and
// so written), and warns of keys_ at -O1; they are left unset on purpose,
// for a table made once per block.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
template <typename T>
class CandidateIndex {
 public:
  static constexpr int kCapacity = 128;
  CandidateIndex() { std::memset(used_, 0, sizeof used_); }
  // The integer stored with d, or −1.
  int find(T d) const {
    for (int s = slot_of(d);; s = (s + 1) % kSlots) {
      if (!used_[s]) return -1;
      if (keys_[s] == bits_of(d)) return values_[s];
    }
  }
  // Stores d with v unless d is there already; false if it was.
  bool insert(T d, int v) {
    int s = slot_of(d);
    for (; used_[s]; s = (s + 1) % kSlots)
      if (keys_[s] == bits_of(d)) return false;
    used_[s] = 1;
    keys_[s] = bits_of(d);
    values_[s] = v;
    return true;
  }

 private:
  static constexpr int kSlots = 2 * kCapacity;  // at most half full
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  static Bits bits_of(T d) {
    Bits b;
    std::memcpy(&b, &d, sizeof b);
    return b;
  }
  static int slot_of(T d) {
    const uint64_t b = bits_of(d);
    return static_cast<int>(((b ^ (b >> 29)) * 0x9E3779B97F4A7C15ull) >> 56);
  }
  Bits keys_[kSlots];
  int values_[kSlots];
  uint8_t used_[kSlots];
};
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// err[i] = Σ h·(w − d_i·(q − z))² with q = min(max(rint(w / d_i) + z, 0), maxq).
template <typename T>
void block_errors(const ZeroFormBlock<T> &b, const T *d, int count, T *err);

// num[i] = Σ h·w·s and den[i] = Σ h·s·s with s = q − z, q as above: the
// weighted least-squares refit num / den of d_i to its own codes.
template <typename T>
void block_refit_sums(const ZeroFormBlock<T> &b, const T *d, int count, T *num, T *den);

// Min-form blocks (Q4_1, Q5_1, and the Q4_K/Q5_K sub-blocks): value d·q + z,
// q = min(max(rint((w − z) / d), 0), maxq); each candidate a pair (d_i, z_i),
// d_i finite and nonzero.
template <typename T>
struct MinFormBlock {
  const T *w;
  const T *h;
  int64_t len;
  T maxq;
};

// err[i] = Σ h·(w − (d_i·q + z_i))².
template <typename T>
void min_block_errors(const MinFormBlock<T> &b, const T *d, const T *z, int count, T *err);

// The sums of the weighted least-squares fit w ≈ d·q + z to candidate i's
// codes q, each into its own array: Σ h, Σ h·q, Σ h·q·q, Σ h·w, Σ h·q·w.
template <typename T>
struct FitSums {
  T *h, *q, *qq, *w, *qw;
};
template <typename T>
void min_block_fit_sums(const MinFormBlock<T> &b, const T *d, const T *z, int count,
                        const FitSums<T> &out);

}  // namespace gptq::cpu
