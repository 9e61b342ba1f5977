"""The top of the layers: the `ecom` CLI, the demo and the local tooling that wire every
stage together (the composition root). Nothing below imports this package."""
