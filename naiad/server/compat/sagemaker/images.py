"""Which framework a ``TrainingImage`` stands for. Naiad runs a script with its own Python
(plus the script's requirements.txt), not a container, so an image only says which
framework the script expects; the table below decides, first match wins, and the
``sagemaker_images`` setting (``NAIAD_SAGEMAKER_IMAGES='{"substring": "framework"}'``) adds
entries before it. An image no entry matches is accepted and run the same way."""

FRAMEWORKS: tuple[tuple[str, str], ...] = (
    ("huggingface-pytorch", "pytorch"),
    ("pytorch-training", "pytorch"),
    ("pytorch-inference", "pytorch"),
    ("tensorflow-training", "tensorflow"),
    ("tensorflow-inference", "tensorflow"),
    ("sagemaker-scikit-learn", "sklearn"),
    ("sagemaker-xgboost", "xgboost"),
)


def framework(image: str, extra: dict[str, str]) -> str:
    for needle, name in (*extra.items(), *FRAMEWORKS):
        if needle in image:
            return name
    return "custom"
