"""JPEG compression round trips with OpenCV (libjpeg, 4:2:0) or Pillow, one quality per image.

A codec is used, not a differentiable approximation: the pipelines only make training inputs.
The codec works on one image at a time; that loop is over images, never pixels.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import torch
from PIL import Image

from zoomsr.errors import ZoomsrError

CODECS = ("opencv", "pillow")


def jpeg_uint8(rgb: np.ndarray, quality: int, codec: str = "opencv") -> np.ndarray:
    """Encode and decode an ``(H, W, 3)`` uint8 RGB array at ``quality`` (1..100)."""
    if codec == "opencv":  # OpenCV expects BGR
        ok, buf = cv2.imencode(
            ".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
        )
        if not ok:
            raise RuntimeError("OpenCV could not encode a JPEG")
        return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    if codec == "pillow":
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="JPEG", quality=int(quality))
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    raise ZoomsrError(f"unknown JPEG codec '{codec}'; use one of {', '.join(CODECS)}")


def jpeg_compress(x: torch.Tensor, quality, codec: str = "opencv") -> torch.Tensor:
    """JPEG round trip of ``(N, 3, H, W)`` float images in [0, 1], quality scalar or ``(N,)``.

    Values are rounded to 8 bits first (half up), as saving the image would; a gray
    ``(N, 1, H, W)`` batch is compressed as RGB and comes back gray.
    """
    n, c = x.shape[:2]
    q = torch.as_tensor(quality).expand(n).tolist()
    rgb = (x.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8).expand(n, 3, -1, -1)
    rgb = rgb.permute(0, 2, 3, 1).cpu().numpy()
    out = np.stack([jpeg_uint8(rgb[i], int(q[i]), codec) for i in range(n)])
    y = torch.from_numpy(out).permute(0, 3, 1, 2).to(device=x.device, dtype=x.dtype) / 255
    return y[:, :1] if c == 1 else y
