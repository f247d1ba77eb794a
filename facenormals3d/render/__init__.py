"""PyTorch3D rendering: previews of meshes (grey, vertex colours, textures), error colour
maps and labelled contact sheets. Later: SH shading and the shading-consistency refinement."""
