"""AWS-compatible APIs (SageMaker, SageMaker Runtime, S3) over Naiad's own services.

They hold no state of their own beyond what their API alone shows (``aws_resources``):
a SageMaker training job is a Naiad job, a SageMaker model a registered model version,
an endpoint a Naiad endpoint, an S3 object an artifact.
"""
