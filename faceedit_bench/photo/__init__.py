"""Editing a user's own photo (issue 20): detect faces and 5 landmarks (:mod:`.landmarks`),
align each face to the CelebA template and crop it as the training data were (:mod:`.align`),
and paste the method's change back into the full-resolution photo (:mod:`.paste`). The command
is ``faceedit-bench edit`` (faceedit_bench/cli/edit.py)."""
