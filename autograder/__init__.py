"""The cvprep grader: release exercises, grade a class, keep solutions in sync with cvprep.

Run ``python -m autograder --help``.
"""
