"""Conversion table of the LPIPS weights `vgg_lpips.pth` (vae_spec.md §5.2).

The torch slices keep torchvision's layer numbers (`net.slice2.5` is `vgg16().features[5]`), so dropping the
slice name gives our `net.features.5`; the lin layers `lin{k}.model.1` (after the Dropout at `model.0`) are `lins.k`.
"""

from __future__ import annotations

from pyramid_jax.convert.engine import CONV2D, COPY, ConversionTable, Leaf, Permute

NCHW_TO_NHWC = Permute((0, 2, 3, 1))  # the `[1, 3, 1, 1]` scaling buffers -> `[1, 1, 1, 3]`

LPIPS_TABLE = ConversionTable(
    name="LPIPS",
    renames=(  # each slice only over its own layers [0:4], [4:9], [9:16], [16:23], [23:30]
        (r"^net\.slice1\.([0-3])\.", r"net.features.\1."),
        (r"^net\.slice2\.([4-8])\.", r"net.features.\1."),
        (r"^net\.slice3\.(9|1[0-5])\.", r"net.features.\1."),
        (r"^net\.slice4\.(1[6-9]|2[0-2])\.", r"net.features.\1."),
        (r"^net\.slice5\.(2[3-9])\.", r"net.features.\1."),
    ),
    leaves=(
        Leaf(r"scaling_layer\.(shift|scale)", r"scaling_layer.\1", NCHW_TO_NHWC),
        Leaf(r"net\.features\.(\d+)\.weight", r"net.features.\1.kernel", CONV2D),
        Leaf(r"net\.features\.(\d+)\.bias", r"net.features.\1.bias", COPY),
        Leaf(r"lin(\d)\.model\.1\.weight", r"lins.\1.kernel", CONV2D),
    ),
)
