# shellcheck shell=bash
# Sourced by .ci/test.sh and .ci/main.sh: install Debian packages if any is
# missing (apt-get, through sudo only when not root). Non-interactive.
install_deps() {
  missing=""
  local pkg state
  for pkg in "$@"; do
    state=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [ "$state" != "install ok installed" ]; then
      missing="$missing $pkg"
    fi
  done
  if [ -z "$missing" ]; then
    echo "build dependencies already installed: $*"
    return 0
  fi
  echo "installing:$missing"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update
  # shellcheck disable=SC2086
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
}
