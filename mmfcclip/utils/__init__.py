from .tool_utils import build_runner, load_tool_config

__all__ = ['build_runner', 'load_tool_config']
