"""One module per data layout, each registering its `Source`; importing this package
registers them all (the embedded synthetic corpus included). See `medflip.data.sources`
for the published layouts in words."""

from medflip.data.layouts import chexpert, manifest, mimic, openi, synthetic  # noqa: F401
from medflip.data.registry import SOURCES, get  # noqa: F401
