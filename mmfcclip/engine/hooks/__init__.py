from .open_vocab_hook import *  # noqa: F401,F403
from .finite_loss_hook import *  # noqa: F401,F403
from .rng_state_hook import *  # noqa: F401,F403
from .signal_checkpoint_hook import *  # noqa: F401,F403
