#include "dtype.h"

#include <cmath>
#include <cstring>
#include <string>

#include "error.h"
#include "half.h"

namespace gptq {

size_t dtype_size(gptq_dtype dtype, const char *where) {
  switch (dtype) {
    case GPTQ_DTYPE_F32: return 4;
    case GPTQ_DTYPE_F16: return 2;
    case GPTQ_DTYPE_BF16: return 2;
  }
  throw Error(GPTQ_ERR_UNSUPPORTED,
              std::string(where) + ": unknown dtype " + std::to_string(static_cast<int>(dtype)) +
                  " (expected GPTQ_DTYPE_F32, _F16 or _BF16)");
}

int64_t find_non_finite(const void *data, gptq_dtype dtype, int64_t count) {
  switch (dtype) {
    case GPTQ_DTYPE_F32: {
      const float *p = static_cast<const float *>(data);
      // Branch-free scan in chunks so the common all-finite case vectorizes.
      const int64_t chunk = 1024;
      for (int64_t start = 0; start < count; start += chunk) {
        const int64_t end = start + chunk < count ? start + chunk : count;
        bool bad = false;
        for (int64_t i = start; i < end; ++i) bad |= !std::isfinite(p[i]);
        if (bad) {
          for (int64_t i = start; i < end; ++i)
            if (!std::isfinite(p[i])) return i;
        }
      }
      return -1;
    }
    case GPTQ_DTYPE_F16: {
      const uint16_t *p = static_cast<const uint16_t *>(data);
      for (int64_t i = 0; i < count; ++i)
        if ((p[i] & 0x7c00u) == 0x7c00u) return i;
      return -1;
    }
    case GPTQ_DTYPE_BF16: {
      const uint16_t *p = static_cast<const uint16_t *>(data);
      for (int64_t i = 0; i < count; ++i)
        if ((p[i] & 0x7f80u) == 0x7f80u) return i;
      return -1;
    }
  }
  return -1;
}

namespace {
template <typename T>
void convert_impl(const void *src, gptq_dtype dtype, int64_t count, T *dst) {
  switch (dtype) {
    case GPTQ_DTYPE_F32: {
      const float *p = static_cast<const float *>(src);
      for (int64_t i = 0; i < count; ++i) dst[i] = static_cast<T>(p[i]);
      return;
    }
    case GPTQ_DTYPE_F16: {
      const uint16_t *p = static_cast<const uint16_t *>(src);
      for (int64_t i = 0; i < count; ++i) dst[i] = static_cast<T>(half_to_float(p[i]));
      return;
    }
    case GPTQ_DTYPE_BF16: {
      const uint16_t *p = static_cast<const uint16_t *>(src);
      for (int64_t i = 0; i < count; ++i) dst[i] = static_cast<T>(bf16_to_float(p[i]));
      return;
    }
  }
}
}  // namespace

void convert_to_float(const void *src, gptq_dtype dtype, int64_t count, float *dst) {
  convert_impl(src, dtype, count, dst);
}

void convert_to_double(const void *src, gptq_dtype dtype, int64_t count, double *dst) {
  convert_impl(src, dtype, count, dst);
}

void convert_from_float(const float *src, int64_t count, gptq_dtype dtype, void *dst) {
  switch (dtype) {
    case GPTQ_DTYPE_F32:
      std::memcpy(dst, src, static_cast<size_t>(count) * sizeof(float));
      return;
    case GPTQ_DTYPE_F16: {
      uint16_t *p = static_cast<uint16_t *>(dst);
      for (int64_t i = 0; i < count; ++i) p[i] = float_to_half(src[i]);
      return;
    }
    case GPTQ_DTYPE_BF16: {
      uint16_t *p = static_cast<uint16_t *>(dst);
      for (int64_t i = 0; i < count; ++i) p[i] = float_to_bf16(src[i]);
      return;
    }
  }
}

}  // namespace gptq
