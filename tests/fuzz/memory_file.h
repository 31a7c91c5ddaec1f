// The fuzz harnesses of file readers hand the reader an in-memory file
// (memfd) holding the input, opened through its /proc path as the tool
// opens any file; one such file per harness, rewritten for every input.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace fuzzing {

// Writes data into the harness's memory file and returns its path.
inline std::string write_memory_file(const uint8_t *data, size_t size) {
  static const int fd = memfd_create("fuzz_input", 0);
  if (fd < 0) {
    std::perror("memfd_create");
    std::abort();
  }
  if (ftruncate(fd, 0) != 0 || ftruncate(fd, static_cast<off_t>(size)) != 0) std::abort();
  size_t done = 0;
  while (done < size) {
    const ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) std::abort();
    done += static_cast<size_t>(n);
  }
  return "/proc/self/fd/" + std::to_string(fd);
}

}  // namespace fuzzing
