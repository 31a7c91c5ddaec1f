#include "cli/progress.h"

#include <unistd.h>

#include <cstdio>
#include <utility>

namespace gptqtool {

bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

Progress::Progress(std::string label, int64_t total, std::string unit, bool enabled)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total > 0 ? total : 1),
      tty_(stderr_is_terminal()), enabled_(enabled),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

Progress::~Progress() {
  // An exception unwinding past an unfinished bar: end its line so the
  // error message starts on a line of its own.
  if (enabled_ && tty_ && !finished_) std::fputc('\n', stderr);
}

void Progress::update(int64_t done) {
  done_ = done;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ < std::chrono::milliseconds(100) && done_ < total_) return;
    last_draw_ = now;
    draw(false);
  } else {
    const int decile = static_cast<int>(10 * done_ / total_);
    if (decile > last_decile_ && done_ < total_) {
      last_decile_ = decile;
      draw(false);
    }
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (!enabled_) return;
  draw(true);
}

void Progress::draw(bool final) {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double frac = static_cast<double>(done_) / static_cast<double>(total_);
  char eta[32] = "";
  if (!final && done_ > 0) {
    std::snprintf(eta, sizeof eta, ", %.0f s left", elapsed * (1.0 - frac) / frac);
  }
  if (tty_) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(frac * kWidth + 0.5);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr, "\r%s [%s] %lld/%lld %s (%.0f s%s)\x1b[K%s", label_.c_str(), bar.c_str(),
                 static_cast<long long>(done_), static_cast<long long>(total_), unit_.c_str(),
                 elapsed, eta, final ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s: %lld/%lld %s (%.0f s%s)\n", label_.c_str(),
                 static_cast<long long>(done_), static_cast<long long>(total_), unit_.c_str(),
                 elapsed, eta);
  }
  std::fflush(stderr);
}

}  // namespace gptqtool
