#!/usr/bin/env bash
# open3d needs libusb-1.0 at import time; install the Debian package when it is missing.
set -euo pipefail
if ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then exit 0; fi
if dpkg -s libusb-1.0-0 >/dev/null 2>&1; then exit 0; fi
echo "installing system package libusb-1.0-0 (needed by open3d)" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libusb-1.0-0 >/dev/null
