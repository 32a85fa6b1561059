"""Trajectory datasets: record from gymnasium envs into Hugging Face `datasets`, serve clips to torch."""

from wm_hub.data.clips import ClipDataset, EncodedClips, encoder_key, frames_to_tensor, tensor_to_frames, write_gif
from wm_hub.data.recorder import load_dataset_dir, record_episodes, record_in_parts, save_dataset

__all__ = ["ClipDataset", "EncodedClips", "encoder_key", "frames_to_tensor", "load_dataset_dir", "record_episodes",
           "record_in_parts", "save_dataset", "tensor_to_frames", "write_gif"]
