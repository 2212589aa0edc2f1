"""The explanation methods by name, with what each picture shows: read by `explain` and by the command line's
help, which must not wait for torch to load (so this module imports nothing)."""

EXPLANATIONS = {
    "filters": "the first conv layer's weights (an MLP: its first layer's rows as images)",
    "activations": "the feature maps of a layer for each image",
    "saliency": "|gradient| of the class score with respect to each pixel",
    "smoothgrad": "the same, averaged over noisy copies: less speckle",
    "integrated-gradients": "gradients summed along the way from a black image (red for, blue against)",
    "occlusion": "how much the score drops when a patch of the image is covered",
    "gradcam": "where a conv layer's class evidence is (coarse, class-specific)",
    "gradcam++": "Grad-CAM weighting each location: fuller cover, but it partly follows the image itself",
    "scorecam": "class evidence by masking the image with each feature map: no gradients, slower",
    "guided-gradcam": "Grad-CAM times guided backpropagation: fine detail where Grad-CAM points",
    "top-patches": "per channel, the 9 data set patches that excite it most (Zeiler & Fergus)",
    "maximize": "the picture that drives a channel (--channel) or a class (--target) up",
    "deepdream": "the image with what a layer sees in it amplified, at several scales",
    "capsule-dims": "CapsNet: each dimension of the image's capsule nudged by -0.25..0.25, decoded",
}
WITHOUT_IMAGES = ("filters", "top-patches", "maximize")  # they show the model itself, or search a data set
