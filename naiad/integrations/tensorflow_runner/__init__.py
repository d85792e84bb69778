"""The script a TensorFlow job's processes run (``__main__.py``); see ``tensorflow_job``."""
