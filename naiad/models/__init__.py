"""Networks with the torchvision layout, a weight loader, and fine-tuning helpers.

    from naiad.models import zoo, finetune

    model = zoo.create("resnet18")
    fingerprint = zoo.load_weights(model, "s3://weights/resnet18.safetensors")
    finetune.replace_head(model, num_classes=3)

No weights ship with Naiad and nothing is downloaded unless a URL is passed.
"""

from naiad.models import finetune, zoo

__all__ = ["finetune", "zoo"]
