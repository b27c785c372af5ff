"""The verl version sspo-verl supports, pinned here only (setup.py and docker/build.sh read the line as text)."""

SUPPORTED_VERL_VERSION = "0.9.1"
