"""cvprep: the reference solutions of the cvprep book, one concept per module.

* ``cvprep.adversarial``: adversarial examples, FGSM and PGD (L-infinity), leaving the
  model as it was.
* ``cvprep.box_coding``: Faster R-CNN's box encoding and decoding (``encode_boxes``,
  ``decode_boxes``, torchvision's ``BoxCoder`` semantics) and the anchors of one
  feature map (``make_anchors``).
* ``cvprep.boxes``: box area, IoU, GIoU, DIoU and CIoU, and the losses built on them,
  with ``torchvision.ops``' names and semantics.
* ``cvprep.blocks``: torch modules of the architectures' building blocks (residual,
  bottleneck, depthwise-separable, inverted residual, squeeze-and-excitation).
* ``cvprep.calibration``: reliability bins, expected calibration error and temperature
  scaling (``fit_temperature``).
* ``cvprep.classifier``: the small CNN chapter 05 trains on the CPU, its training loop
  and accuracy.
* ``cvprep.conv``: ``conv2d`` (and its loop version), ``conv_output_size``,
  ``max_pool2d``, ``avg_pool2d`` in NumPy, with ``torch.nn.functional``'s semantics.
* ``cvprep.cost``: parameters, multiply-accumulates (MACs), FLOPs and activation
  memory of a layer (``conv2d_params``, ``conv2d_macs``, ``linear_params``,
  ``linear_macs``) or of a whole torch model (``profile``).
* ``cvprep.detection_metrics``: matching detections to ground truth, precision and
  recall, average precision (VOC 11-point, VOC all-point, COCO 101-point) and COCO's
  mAP (``mean_average_precision``).
* ``cvprep.interpret``: Grad-CAM (and its loop version) and gradient saliency maps.
* ``cvprep.losses``: softmax cross-entropy with label smoothing, binary focal loss,
  class-balanced weights (effective number of samples) and the distillation loss.
* ``cvprep.nms``: non-maximum suppression (``nms``, ``batched_nms``), Soft-NMS and
  DIoU-NMS.
* ``cvprep.receptive_field``: receptive field size, jump and start of a layer stack
  or a torch module.
* ``cvprep.scaling``: EfficientNet's compound scaling (``compound_scale``) and the
  rounding of scaled channels and depths.
* ``cvprep.shapes``: a generated, seeded data set of shapes at random positions.
* ``cvprep.testing``: oracles and the checks behind the exercises' hidden tests.
* ``cvprep.widgets``: the book's figures (plotly) and live explorers (ipywidgets).

Importing ``cvprep`` imports nothing heavy: NumPy modules never load torch, and plotly
is loaded only by ``cvprep.widgets``.
"""

__version__ = "0.1.0"
