#!/usr/bin/env bash
# Fetch a CPU-capable libtorch 2.13.0 (the version tch 0.26 requires) and lay it out
# as LIBTORCH expects: $DEST/lib/*.so*, $DEST/include/, $DEST/build-version.
#
# Source: the PyPI torch 2.13.0 wheel (its CPU libraries are a complete libtorch)
# plus the two CUDA runtime libraries libtorch_cpu.so links against, which load
# fine on machines without a GPU. A user with their own libtorch sets LIBTORCH
# (or LIBTORCH_USE_PYTORCH=1) and never runs this script.
#
# Usage: scripts/libtorch.sh [DEST]   (default: ./libtorch, ignored by git)
set -euo pipefail

DEST=${1:-libtorch}
VERSION=2.13.0

if [[ -f "$DEST/build-version" && "$(cat "$DEST/build-version")" == "$VERSION" && -f "$DEST/lib/libtorch_cpu.so" ]]; then
    echo "libtorch $VERSION already in $DEST"
    exit 0
fi

PY=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/shelfcast-libtorch.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "fetching torch==$VERSION and CUDA runtime wheels from PyPI into $WORK" >&2
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --dest "$WORK" \
    "torch==$VERSION" "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-cupti==13.0.*"

STAGE="$WORK/stage"
mkdir -p "$STAGE"
for whl in "$WORK"/torch-*.whl; do
    "$PY" -m zipfile -e "$whl" "$STAGE/torch-wheel" >/dev/null 2>&1 || \
        (cd "$STAGE" && unzip -q -o "$whl" 'torch/lib/*' 'torch/include/*' -d torch-wheel)
done
for whl in "$WORK"/nvidia_cuda_runtime-*.whl "$WORK"/nvidia_cuda_cupti-*.whl; do
    "$PY" -m zipfile -e "$whl" "$STAGE/nvidia" >/dev/null
done

TMPDEST="$DEST.partial"
rm -rf "$TMPDEST"
mkdir -p "$TMPDEST/lib"
TL="$STAGE/torch-wheel/torch/lib"
cp -a "$TL"/libtorch_cpu.so "$TL"/libc10.so "$TMPDEST/lib/"
cp -a "$TL"/libgomp*.so* "$TMPDEST/lib/" 2>/dev/null || true
# Other shared objects libtorch_cpu.so may need (e.g. libshm); copy the small non-CUDA ones.
for f in "$TL"/*.so*; do
    base=$(basename "$f")
    case "$base" in
        libtorch_cuda*|libtorch_nvshmem*|libc10_cuda*|libtorch.so|libtorch_python*|libcaffe2_nvrtc*|libnvrtc*|libcudnn*|libcublas*|libnccl*|libcusparse*|libcufft*|libcurand*|libcusolver*|libnvJitLink*|libnvToolsExt*|libtorch_global_deps*) ;;
        *) [[ -e "$TMPDEST/lib/$base" ]] || cp -a "$f" "$TMPDEST/lib/" ;;
    esac
done
find "$STAGE/nvidia" -name 'libcudart.so.13*' -exec cp -a {} "$TMPDEST/lib/" \;
find "$STAGE/nvidia" -name 'libcupti.so.13*' -exec cp -a {} "$TMPDEST/lib/" \;
cp -a "$STAGE/torch-wheel/torch/include" "$TMPDEST/include"
# tch links -ltorch; the wheel's libtorch.so pulls in the CUDA stack, so an empty
# stand-in takes its place (everything tch calls lives in libtorch_cpu.so).
echo | gcc -shared -x c - -o "$TMPDEST/lib/libtorch.so"
strip --strip-unneeded "$TMPDEST/lib/libtorch_cpu.so" || true
echo "$VERSION" > "$TMPDEST/build-version"

rm -rf "$DEST"
mv "$TMPDEST" "$DEST"
echo "libtorch $VERSION laid out in $DEST ($(du -sh "$DEST" | cut -f1))"
