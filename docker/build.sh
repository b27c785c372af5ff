#!/usr/bin/env bash
# Build docker/Dockerfile with a tag that names the stack, read from the sources (never typed by hand):
#   <IMAGE_NAME>:<sspo-verl version>-verl<verl pin>-vllm<vLLM>-torch<torch>-cu<CUDA>
# e.g. sspo-verl:0.1.0-verl0.9.1-vllm0.24.0-torch2.11.0-cu13.0 (versions: sspo_verl/__init__.py,
# sspo_verl/verl_version.py and the Dockerfile's ARGs).
#
#   docker/build.sh                       # build (from any directory)
#   docker/build.sh --print-tag           # print the tag only
#   docker/build.sh --push                # extra flags go to `docker build` (here: BuildKit's --push)
set -euo pipefail

# ===================================== user-adjustable =====================================
IMAGE_NAME=${IMAGE_NAME:-sspo-verl}     # e.g. ghcr.io/<you>/sspo-verl to push to a registry
DOCKER=${DOCKER:-docker}                # or podman
# ===========================================================================================

die() { echo "docker/build.sh: ERROR: $*" >&2; exit 1; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dockerfile=$repo/docker/Dockerfile
constant() { sed -n "s/^$2 = \"\\([^\"]*\\)\"\$/\\1/p" "$repo/sspo_verl/$1"; }
version=$(constant __init__.py __version__)
verl=$(constant verl_version.py SUPPORTED_VERL_VERSION)
arg() { sed -n "s/^ARG $1=\\([^[:space:]]*\\).*/\\1/p" "$dockerfile"; }
vllm=$(arg VLLM_VERSION)
torch=$(arg TORCH_VERSION)
cuda=$(arg CUDA_VERSION)
for name in version verl vllm torch cuda; do
    [[ ${!name} =~ ^[0-9][0-9A-Za-z.]*$ ]] || die "could not read the $name version from sspo_verl/{__init__,verl_version}.py / docker/Dockerfile (got '${!name}')"
done
tag="$IMAGE_NAME:$version-verl$verl-vllm$vllm-torch$torch-cu$cuda"

if [[ ${1:-} == --print-tag ]]; then
    printf '%s\n' "$tag"
    exit 0
fi
command -v "$DOCKER" >/dev/null || die "$DOCKER not found: install Docker (or set DOCKER=podman)"
echo "+ $DOCKER build -f $dockerfile -t $tag $* $repo" >&2
exec "$DOCKER" build -f "$dockerfile" -t "$tag" "$@" "$repo"
