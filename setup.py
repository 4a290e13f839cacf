"""Package layout: ``src/latent4d`` plus two top-level folders mapped into the package.

``conf/`` becomes ``latent4d.conf`` (Hydra configs found from any working directory) and
``viewer/`` becomes ``latent4d.viewer`` (the Open3D GUI). Metadata lives in pyproject.toml.
"""

from setuptools import find_packages, setup

packages = find_packages("src")
packages += ["latent4d.conf"] + [f"latent4d.viewer{('.' + p) if p else ''}" for p in [""] + find_packages("viewer")]

setup(
    packages=packages,
    package_dir={"": "src", "latent4d.conf": "conf", "latent4d.viewer": "viewer"},
    package_data={"latent4d.conf": ["*.yaml", "**/*.yaml"], "latent4d": ["data/*.npz", "data/*.json"]},
    include_package_data=True,
)
