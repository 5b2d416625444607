"""The optional C extension; everything else is in pyproject.toml.

Optional: without a C compiler the install still succeeds, and workers keep MKL's default
kernel choice (see workers/mkl_dispatch.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "torchkiln.workers.native.mkl_vendor",
            sources=["workers/native/mkl_vendor.c"],
            optional=True,
        )
    ]
)
