#!/usr/bin/env bash
# The main job on the bundled default photo (scikit-image's public-domain astronaut portrait).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out}"
mkdir -p "$out"
.venv/bin/python -c "import sys, skimage.data, imageio.v3 as iio; iio.imwrite(sys.argv[1], skimage.data.astronaut())" "$out/astronaut.png"
.venv/bin/facenormals3d faces "$out/astronaut.png" -o "$out/faces" --overwrite
echo "results: $out/faces/astronaut/ (overlay.png, face_0/crop.png, mask.png, landmarks, coarse_normals.png)"
