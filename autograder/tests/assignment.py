"""The assignment the grading tests use."""

from autograder import course

ASSIGNMENT = "01-convolution"
SOURCE = course.EXERCISES / ASSIGNMENT / "convolution.ipynb"
