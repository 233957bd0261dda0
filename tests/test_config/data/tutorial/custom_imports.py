custom_imports = dict(imports=['kiln_tutorial_my_module'], allow_failed_imports=False)
optimizer = dict(type='TutorialCustomOptim', lr=0.5)
