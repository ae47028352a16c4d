"""The shapes world under its old name: it ships inside the package now, as `streamsink.shapes`.

The scripts here (`make_samples.py`, `train_demo_model.py`, `demo.py`) and the
tests import it as `shapes` from this folder; this module is that very
package module, so there is one copy of the world.
"""

import sys

import streamsink.shapes

sys.modules[__name__] = streamsink.shapes
