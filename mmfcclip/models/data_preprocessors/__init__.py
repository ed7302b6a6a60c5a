from .fcclip_data_preprocessor import FCCLIPDataPreprocessor

__all__ = ['FCCLIPDataPreprocessor']
