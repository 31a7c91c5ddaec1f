package gptq

// #include <stddef.h>
// #include <stdint.h>
import "C"

import (
	"math"
	"strconv"
	"time"
)

// Config is the configuration of a Context, the Go form of gptq_config (see
// include/gptq.h for each field's meaning and range). Start from
// DefaultConfig, whose values come from the library's gptq_config_default,
// and change fields: the zero Config is not a valid configuration.
type Config struct {
	Bits          int     // 2..8
	GroupSize     int     // columns per group, or -1 for one group
	Sym           bool    // symmetric (zero fixed at 2^(bits-1))
	ActOrder      bool    // quantize columns by descending Hessian diagonal
	StaticGroups  bool    // group parameters from the weights before quantizing
	BlockSize     int     // columns per lazy block, >= 1
	DampPercent   float32 // in [0, 1)
	DampIncrement float32 // in [0, 1); 0 disables the retries
	MSE           bool    // search the clipping range per group and row
	MSENorm       float32 // > 0
	MSEGrid       int     // >= 1
	MSEMaxShrink  float32 // in (0, 1]
	Backend       Backend
	Precision     Precision
	LogLevel      LogLevel // lowest level passed to Log
	NumThreads    int      // CPU backend threads; 0 = one per core
	// ActGroupAware: group-aware act-order (groups keep their column
	// ranges, so g_idx stays j / group_size; not with ActOrder).
	ActGroupAware bool
	// Grid: GPTQ's own (GridGPTQ) or one of llama.cpp's GGUF block formats
	// (GridQ40 ...), whose bytes QTensor.GGUFExport writes; with a GGUF
	// grid, Bits and GroupSize are the format's and InFeatures must be a
	// multiple of the block (32, or 256 for the K-quants).
	Grid Grid

	// Progress, if not nil, is called during Quantize with the number of
	// columns done and the total. Return false to cancel: Quantize then
	// stops at its next check and fails with ErrCancelled, leaving the
	// Context as it was.
	Progress func(done, total int64) bool
	// Log, if not nil, receives the library's messages at LogLevel and
	// above. The message string is the callback's to keep.
	Log func(level LogLevel, message string)
}

// DefaultConfig returns the library's defaults (gptq_config_default), with
// no callbacks.
func DefaultConfig() Config {
	var c c_gptq_config
	c_gptq_config_default(&c)
	return Config{
		Bits:          int(c.bits),
		GroupSize:     int(c.group_size),
		Sym:           c.sym != 0,
		ActOrder:      c.act_order != 0,
		StaticGroups:  c.static_groups != 0,
		BlockSize:     int(c.block_size),
		DampPercent:   float32(c.damp_percent),
		DampIncrement: float32(c.damp_increment),
		MSE:           c.mse != 0,
		MSENorm:       float32(c.mse_norm),
		MSEGrid:       int(c.mse_grid),
		MSEMaxShrink:  float32(c.mse_max_shrink),
		Backend:       Backend(c.backend),
		Precision:     Precision(c.precision),
		LogLevel:      LogLevel(c.log_level),
		NumThreads:    int(c.num_threads),
		ActGroupAware: c.act_group_aware != 0,
		Grid:          Grid(c.grid),
	}
}

// toC fills a gptq_config from cfg, starting from gptq_config_default so
// that fields this package does not know keep the library's defaults. The
// callbacks are not set here. An int that does not fit the C field is an
// ErrInvalidConfig error (truncating could turn a wrong value into a valid
// one); range checks are the library's.
func (cfg *Config) toC(where string) (c_gptq_config, error) {
	var c c_gptq_config
	c_gptq_config_default(&c)
	ints := []struct {
		name  string
		value int
		field *C.int32_t
	}{
		{"Bits", cfg.Bits, &c.bits},
		{"GroupSize", cfg.GroupSize, &c.group_size},
		{"BlockSize", cfg.BlockSize, &c.block_size},
		{"MSEGrid", cfg.MSEGrid, &c.mse_grid},
		{"NumThreads", cfg.NumThreads, &c.num_threads},
	}
	for _, f := range ints {
		if f.value < math.MinInt32 || f.value > math.MaxInt32 {
			return c, goError(ErrInvalidConfig, where, "Config.%s is %d, outside the int32 range", f.name, f.value)
		}
		*f.field = C.int32_t(f.value)
	}
	c.sym = cBool(cfg.Sym)
	c.act_order = cBool(cfg.ActOrder)
	c.static_groups = cBool(cfg.StaticGroups)
	c.act_group_aware = cBool(cfg.ActGroupAware)
	c.mse = cBool(cfg.MSE)
	c.damp_percent = C.float(cfg.DampPercent)
	c.damp_increment = C.float(cfg.DampIncrement)
	c.mse_norm = C.float(cfg.MSENorm)
	c.mse_max_shrink = C.float(cfg.MSEMaxShrink)
	c.backend = c_gptq_backend(cfg.Backend)
	c.precision = c_gptq_precision(cfg.Precision)
	c.log_level = c_gptq_log_level(cfg.LogLevel)
	c.grid = c_gptq_grid(cfg.Grid)
	return c, nil
}

func cBool(b bool) C.int32_t {
	if b {
		return 1
	}
	return 0
}

// QuantStats is what Quantize reports (gptq_quant_stats).
type QuantStats struct {
	// Loss is Σ (w - q)² / U_jj² / 2 over all weights (the reference's
	// "error"); U = I for a round-to-nearest fallback.
	Loss float64
	// DampPercentUsed is the damping finally used (>= the configured one
	// after retries).
	DampPercentUsed float64
	// DampRetries counts failed Cholesky attempts.
	DampRetries int
	// FellBackToRTN is true if every factorization failed and the layer was
	// quantized with round-to-nearest.
	FellBackToRTN bool
	// DeadColumns counts input columns whose Hessian diagonal was 0.
	DeadColumns int64
	// Elapsed is the wall-clock time spent in the library's gptq_quantize.
	Elapsed time.Duration
	// Backend did the work (BackendCPU or BackendCUDA).
	Backend Backend
}

func statsFromC(s *c_gptq_quant_stats) QuantStats {
	return QuantStats{
		Loss:            float64(s.loss),
		DampPercentUsed: float64(s.damp_percent_used),
		DampRetries:     int(s.damp_retries),
		FellBackToRTN:   s.fell_back_to_rtn != 0,
		DeadColumns:     int64(s.dead_columns),
		Elapsed:         time.Duration(float64(s.seconds) * float64(time.Second)),
		Backend:         Backend(s.backend),
	}
}

// String returns "CPU", "CUDA", "auto", or "Backend(N)".
func (b Backend) String() string {
	switch b {
	case BackendAuto:
		return "auto"
	case BackendCPU:
		return "CPU"
	case BackendCUDA:
		return "CUDA"
	}
	return "Backend(" + strconv.Itoa(int(b)) + ")"
}

// String returns "debug", "info", "warn", "error", or "LogLevel(N)".
func (l LogLevel) String() string {
	switch l {
	case LogDebug:
		return "debug"
	case LogInfo:
		return "info"
	case LogWarn:
		return "warn"
	case LogError:
		return "error"
	}
	return "LogLevel(" + strconv.Itoa(int(l)) + ")"
}

// Version returns the version of the libgptq actually loaded, "MAJOR.MINOR.PATCH".
func Version() string { return c_gptq_version_string() }

// LoadedVersionNumber returns the loaded library's MAJOR*10000 + MINOR*100 +
// PATCH, comparable with the header's VersionNumber this package was built
// against.
func LoadedVersionNumber() uint32 { return c_gptq_version_number() }
