"""The study's :class:`~SaliencyTrustLib.preprocessing.Preprocessing` as a MONAI dictionary
transform, so a bundle config (``trust.json``'s classifier evaluation) feeds the network exactly
what the study pipeline feeds it: the core's reader, orientation, geometry, intensity, channels.
"""

from __future__ import annotations

from typing import Any, Dict, Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from .preprocessing import Preprocessing


class Preprocessingd(MapTransform):
    """Read each key's image (a path: :func:`SaliencyTrustLib.io.read_image`; or an
    :class:`~SaliencyTrustLib.image.ImageVolume`) and turn it into the network input
    ``(C, *model grid)`` float32 with ``preprocessing``.

    Args:
        keys: image keys.
        preprocessing: a :class:`Preprocessing` (or its keyword arguments as a dict).
        spatial_dims: 2 (radiographs) or 3 (volumes).
        allow_missing_keys: as in :class:`monai.transforms.MapTransform`.
    """

    def __init__(self, keys: KeysCollection, preprocessing: Any = None, spatial_dims: int = 2,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if isinstance(preprocessing, Mapping):
            preprocessing = Preprocessing(**preprocessing)
        self.preprocessing = preprocessing or Preprocessing()
        self.spatial_dims = int(spatial_dims)
        if self.preprocessing.in_channels is None:
            raise ValueError("Preprocessingd: give preprocessing.in_channels (a bundle config has no model to ask).")

    def __call__(self, data: Mapping[Hashable, Any]) -> Dict[Hashable, Any]:
        from .image import ImageVolume
        from .io import read_image

        d = dict(data)
        for key in self.key_iterator(d):
            volume = d[key] if isinstance(d[key], ImageVolume) else read_image(d[key])
            image, _geometry = self.preprocessing.image_to_model(volume, self.spatial_dims)
            d[key] = torch.from_numpy(image)
        return d
