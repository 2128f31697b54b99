"""`python -m ternarylm.lm_eval_tasks` prints the folder to pass to lm_eval's --include_path."""

from ternarylm.lm_eval_tasks import TASKS_DIR

print(TASKS_DIR)
