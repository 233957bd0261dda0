# A non-string value from the environment: the quotes keep the file valid Python.
model = dict(
    bbox_head=dict(
        num_classes={{'$KILN_TUTORIAL_NUM_CLASSES:80'}}))
