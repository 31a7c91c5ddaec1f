// Small file-system helpers with the durability the checkpoint writer needs:
// every file is fsynced before the directory holding it is renamed into place.
#pragma once

#include <string>

namespace gptqtool {

// Writes `content` to `path` (created or truncated) and fsyncs it.
void write_file_synced(const std::string &path, const std::string &content);
// The same for a file the user named: written beside `path` under a
// temporary name and renamed over it once synced, so a failed write leaves
// the old file or nothing, never a truncated one. (A path that exists and
// is not a regular file, such as /dev/null, is written in place.)
void write_file_replacing(const std::string &path, const std::string &content);
// The process's umask (the permission bits new files and directories lose).
unsigned current_umask();
// Copies src to dst byte for byte and fsyncs dst.
void copy_file_synced(const std::string &src, const std::string &dst);
void fsync_directory(const std::string &dir);
std::string read_text_file(const std::string &path);
bool path_exists(const std::string &path);
// Removes a file or a directory tree; errors ignored (used for clean-up).
void remove_tree_quietly(const std::string &path);
// Creates a fresh directory beside `target` named ".<basename>.tmp-XXXXXX",
// with the permissions mkdir gives under the umask (0777 & ~umask). Files
// the helpers above create get 0666 & ~umask, as open() gives.
std::string make_sibling_temp_dir(const std::string &target);

}  // namespace gptqtool
