"""Training data: the synthetic face engine on the ICT FaceKit model, shards and datasets.

Stages, one module each:

* :mod:`~facenormals3d.data.ict`       read and check an ICT FaceKit folder, cache it as .npz
* :mod:`~facenormals3d.data.geometry`  identity / expression / pose / camera sampling, crop
* :mod:`~facenormals3d.data.textures`  noise bank and mesoscale detail (bump) layer, wrinkles
* :mod:`~facenormals3d.data.albedo`    procedural skin / lips / brows / hair / eye albedo
* :mod:`~facenormals3d.data.render`    ray casting (open3d), shadows and numpy shading
* :mod:`~facenormals3d.data.hair`      hair layers (scalp, fringe, beard, brows) and their shading
* :mod:`~facenormals3d.data.scene`     photographic backgrounds, shoulders and clothes
* :mod:`~facenormals3d.data.glasses`   3-D glasses placed on the head: frames, lenses, cast shadow
* :mod:`~facenormals3d.data.effects`   background clutter, occluders, lens, camera and JPEG
* :mod:`~facenormals3d.data.synth`     one sample from a seed; the identity split rule
* :mod:`~facenormals3d.data.shards`    the on-disk shard layout, manifest and contact sheet
* :mod:`~facenormals3d.data.generate`  multi-process rendering into shards (``facenormals3d synth``)
* :mod:`~facenormals3d.data.datasets`  torch Datasets (on the fly, endless, and from shards)
* :mod:`~facenormals3d.data.fake_ict`  a tiny ICT-layout folder for tests and demos
"""
