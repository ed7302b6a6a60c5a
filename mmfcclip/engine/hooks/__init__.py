from .open_vocab_hook import *  # noqa: F401,F403
