"""Fine-tuning Whisper on your own recordings (``voxa finetune``); see :mod:`.train`."""
