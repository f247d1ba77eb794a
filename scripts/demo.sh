#!/usr/bin/env bash
# The main job on the bundled default photo (scikit-image's public-domain astronaut portrait).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out}"
mkdir -p "$out"
.venv/bin/python -c "import sys, skimage.data, imageio.v3 as iio; iio.imwrite(sys.argv[1], skimage.data.astronaut())" "$out/astronaut.png"
extra=()
if [ ! -f assets/normalnet.safetensors ]; then
  echo "note: no shipped network weights in assets/; using the landmark-face normals instead" >&2
  extra=(--normals landmarks)
fi
.venv/bin/facenormals3d reconstruct "$out/astronaut.png" -o "$out" --overwrite "${extra[@]}"
echo "results: $out/astronaut/face_0/ (open preview.png first; mesh.obj + texture.png for Blender/MeshLab)"
