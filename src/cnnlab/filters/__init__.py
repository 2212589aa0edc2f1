"""Image filters, frequency, and what a convolutional layer does to a picture: the lesson's middle part.

Everything returns numpy arrays (images in RGB order, as everywhere in cnnlab); the `cnnlab filter`, `spectrum`
and `conv-demo` commands draw them with `cnnlab.plots`.
Note that OpenCV's `filter2D`, like `nn.Conv2d`, computes a *correlation*: the kernel is laid on the image as
written, not flipped as in the textbook convolution. For symmetric kernels (blurs, Laplacian) it makes no
difference; for Sobel it decides the sign: `sobel-x` is positive where the image gets brighter to the right.

Only `conv_demo` imports torch, and only when called.
"""

from cnnlab.filters.conv_demo import LESSON_FILTERS, check_filters, conv_demo, explain_sizes, output_size
from cnnlab.filters.display import DISPLAYS, display_mode, to_uint8
from cnnlab.filters.filtering import BORDERS, apply_kernel, blur
from cnnlab.filters.kernels import KERNELS, check_kernel, format_matrix, kernel_label, parse_kernel
from cnnlab.filters.samples import SAMPLES, image_stem, load_picture, sample_image
from cnnlab.filters.spectrum import frequency_filter, frequency_mask, kernel_response, spectrum, strongest_frequency

__all__ = [
    "BORDERS",
    "DISPLAYS",
    "KERNELS",
    "LESSON_FILTERS",
    "SAMPLES",
    "apply_kernel",
    "blur",
    "check_filters",
    "check_kernel",
    "conv_demo",
    "display_mode",
    "explain_sizes",
    "format_matrix",
    "frequency_filter",
    "frequency_mask",
    "image_stem",
    "kernel_label",
    "kernel_response",
    "load_picture",
    "output_size",
    "parse_kernel",
    "sample_image",
    "spectrum",
    "strongest_frequency",
    "to_uint8",
]
