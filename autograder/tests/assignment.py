"""The assignments the grading tests use.

``ASSIGNMENT`` is the one the sample class hands in (corpus.py, test_batch.py). Every
assignment is graded end to end in test_grading.py, which needs, for each of its solution
cells, one plausible mistake that fails every test of that part (``MISTAKES``).
"""

from pathlib import Path

from autograder import course

ASSIGNMENT = "01-convolution"
SOURCE = course.EXERCISES / ASSIGNMENT / "convolution.ipynb"


def source_of(assignment: str) -> Path:
    """The nbgrader source notebook of ``assignment`` (one per assignment folder)."""
    [path] = sorted((course.EXERCISES / assignment).glob("*.ipynb"))
    return path


# assignment -> solution cell -> a mistake, as an edit of the reference code: (text to replace, replacement).
MISTAKES = {
    "01-convolution": {
        "conv_output_size": (  # forgets the "+ 1" and the check that the kernel fits
            'check_window_fits(size, padding, span, "conv_output_size")\n    return (size + 2 * padding - span) // stride + 1',
            "return (size + 2 * padding - span) // stride",
        ),
        "conv2d": ("window * weight[f]", "window * weight[f, :, ::-1, ::-1]"),  # true convolution: flips the kernel
        "max_pool2d": ("kw, sw)", "kw, 1)"),  # ignores the horizontal stride
        "receptive_field": ("start = start + ((span - 1) / 2 - padding) * jump", "start = start + (span - 1) / 2 * jump"),
    },
    "04-architectures": {
        "conv2d_params": (  # forgets groups: no check that they divide the channels, every filter sees all inputs
            "_check_groups(in_channels, out_channels, groups)\n    weights = out_channels * (in_channels // groups) * kh * kw",
            "weights = out_channels * in_channels * kh * kw",
        ),
        "conv2d_macs": (  # counts FLOPs, two per multiply-accumulate
            "return h_out * w_out * out_channels * macs_per_output",
            "return 2 * h_out * w_out * out_channels * macs_per_output",
        ),
        # forgets the linear layers
        "sequential_costs": ("isinstance(layer, (nn.Conv2d, nn.Linear))", "isinstance(layer, nn.Conv2d)"),
        "Bottleneck": (  # no projection: the shortcut is always the identity
            "self.shortcut = _shortcut(in_channels, self.out_channels, stride)", "self.shortcut = nn.Identity()"),
        # no sigmoid: the gate is not in (0, 1)
        "SqueezeExcitation": ("return self.scale_activation(self.expand(hidden))", "return self.expand(hidden)"),
    },
    "06-detection": {
        "box_iou": ("return _ratio(inter, union)", "return _ratio(inter, union).T"),  # returns [M, N]
        # penalises the enclosing box's area outside the intersection instead of the union
        "generalized_box_iou": ("_ratio(enclosing - union, enclosing)", "_ratio(enclosing - inter, enclosing)"),
        "nms": ("for i in _priority_order(scores):", "for i in range(len(scores)):"),  # never sorts by score
        # picks the next box by its original score instead of its decayed one
        "soft_nms": ("best = max(remaining, key=lambda i: current[i])", "best = max(remaining, key=lambda i: scores[i])"),
        "average_precision": (  # reads the raw zigzag instead of the monotone envelope
            "envelope = np.maximum.accumulate(precision[::-1])[::-1]", "envelope = precision"),
    },
    "05-classification": {
        "focal_loss": (  # swaps the weights: alpha for the negatives, 1 - alpha for the positives
            "loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss",
            "loss = ((1 - alpha) * targets + alpha * (1 - targets)) * loss"),
        "distillation_loss": (  # forgets the T^2 that keeps the soft term's gradients the same size at every T
            "return alpha * t**2 * kl + (1.0 - alpha) * hard", "return alpha * kl + (1.0 - alpha) * hard"),
        "grad_cam": (  # no ReLU: evidence against the class shows up too
            'return torch.relu(torch.einsum("nk,nkhw->nhw", alphas, activations))',
            'return torch.einsum("nk,nkhw->nhw", alphas, activations)'),
        "fgsm": (  # never clips to the valid range
            "return (images.detach() + epsilon * gradient.sign()).clamp(low, high)",
            "return images.detach() + epsilon * gradient.sign()"),
    },
}

# Tests of other parts that a mistake in a part also fails, because they call its code:
# the provided _module_macs counts the rows of sequential_costs with the learner's conv2d_macs.
ALSO_FAILS = {
    "04-architectures": {"conv2d_macs": ["test_sequential_costs_macs"]},
}

# Points of each assignment, from the table at the top of its notebook.
MAX_SCORE = {"01-convolution": 10, "04-architectures": 10, "05-classification": 10, "06-detection": 10}
