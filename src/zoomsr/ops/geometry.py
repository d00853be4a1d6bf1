"""Feature matching and homographies between two views of a scene (OpenCV SIFT + RANSAC)."""

from __future__ import annotations

import cv2
import numpy as np

from zoomsr.errors import DataError


def to_gray_u8(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) float RGB in [0, 1] -> (H, W) uint8 luma, OpenCV's input."""
    gray = img @ np.array([0.299, 0.587, 0.114], dtype=img.dtype) if img.ndim == 3 else img
    return np.clip(gray * 255 + 0.5, 0, 255).astype(np.uint8)


def resize_long_side(img: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    """Area-downscale so the longer side is at most ``long_side``; returns (image, factor)."""
    factor = min(1.0, long_side / max(img.shape[:2]))
    if factor == 1.0:
        return img, 1.0
    size = (round(img.shape[1] * factor), round(img.shape[0] * factor))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA), factor


def match_homography(
    src: np.ndarray, dst: np.ndarray, min_inliers: int = 40, ransac_px: float = 3.0
) -> tuple[np.ndarray, int]:
    """Homography mapping ``src`` pixel coordinates to ``dst`` (both uint8 gray) and its inlier count.

    SIFT features, Lowe's ratio test, RANSAC. Raises DataError when the views do not share
    enough of the scene (different scenes, no overlap).
    """
    sift = cv2.SIFT_create(nfeatures=8000)
    kp1, d1 = sift.detectAndCompute(src, None)
    kp2, d2 = sift.detectAndCompute(dst, None)
    if d1 is None or d2 is None or len(kp1) < min_inliers or len(kp2) < min_inliers:
        raise DataError("too few features to match the two images (flat or tiny images?)")
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(d1, d2, k=2)
    good = [m for m, n in (p for p in pairs if len(p) == 2) if m.distance < 0.75 * n.distance]
    if len(good) < min_inliers:
        raise DataError(
            f"the images share too little of the scene ({len(good)} matches): different scenes?"
        )
    p1 = np.float32([kp1[m.queryIdx].pt for m in good])
    p2 = np.float32([kp2[m.trainIdx].pt for m in good])
    hom, inliers = cv2.findHomography(
        p1, p2, cv2.RANSAC, ransac_px, maxIters=5000, confidence=0.999
    )
    count = int(inliers.sum()) if inliers is not None else 0
    if hom is None or count < min_inliers:
        raise DataError(
            f"no consistent geometry between the images ({count} inliers): different scenes?"
        )
    return hom, count


def scale_homography(hom: np.ndarray, src_factor: float, dst_factor: float) -> np.ndarray:
    """Lift a homography found on images resized by these factors back to full resolution."""
    s_src = np.diag([src_factor, src_factor, 1.0])
    s_dst_inv = np.diag([1 / dst_factor, 1 / dst_factor, 1.0])
    return s_dst_inv @ hom @ s_src


def homography_scale(hom: np.ndarray, point: tuple[float, float]) -> float:
    """Local linear scale (sqrt of the Jacobian determinant) of ``hom`` at ``point``."""
    x, y = point
    h = hom / hom[2, 2]
    w = h[2, 0] * x + h[2, 1] * y + 1
    u = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w
    v = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w
    j = np.array(
        [
            [(h[0, 0] - u * h[2, 0]) / w, (h[0, 1] - u * h[2, 1]) / w],
            [(h[1, 0] - v * h[2, 0]) / w, (h[1, 1] - v * h[2, 1]) / w],
        ]
    )
    return float(np.sqrt(abs(np.linalg.det(j))))


def apply_homography(hom: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points."""
    return cv2.perspectiveTransform(points.reshape(-1, 1, 2).astype(np.float64), hom).reshape(-1, 2)
