"""Names vulture reports as unused in app/ that are used by a framework, not by our code.

Read by `make guards` (pyproject.toml [tool.vulture]); never imported. Decorated handlers and
validators (FastAPI routes, pydantic validators, SQLAlchemy listeners) are skipped there by
`ignore_decorators`. Only false positives belong here: dead code is removed, not listed.
"""

# pydantic: settings/model configuration, and fields read by validation and serialisation
# (polyaxonfile sections accepted as input, response fields filled from rows).
model_config
level  # logic/specs.py LoggingSpec
formatter
backend
nocache
gpu
tpu
persistence
default_worker
worker
default_ps
ps
delay_workers_by_global_step
run_config
tensorflow
horovod
pytorch
mxnet
quniform  # logic/matrix.py: the v0 matrix keys
loguniform
qloguniform
qnormal
qlognormal
latest_version  # routers/versions.py
min_version
dsn
has_code  # schemas/
has_notebook
update_code
is_clone
is_staff
num_experiments
num_pending_experiments
num_running_experiments
num_scheduled_experiments
num_succeeded_experiments
num_failed_experiments
num_stopped_experiments
num_experiment_groups
num_independent_experiments
num_builds
view  # routers/ui.py: a path parameter the client routes on
plx_version  # schemas/cluster.py, and the node facts runtimes/base.py hands it
n_gpus
kubelet_version
docker_version
os_image
kernel_version
schedulable_taints
schedulable_state
version_api
runs_isolated
single_trusted_user

# SQLAlchemy: a TypeDecorator's hooks, columns written by services, the DBAPI connection.
impl
cache_ok
_.process_bind_param
_.process_result_value
num_planned
_.num_planned
materialized_count
_.materialized_count
_.isolation_level
inherit_cache  # dialects.py: a SQL construct cacheable by SQLAlchemy

# Jinja's sandbox: overridden hooks of SandboxedEnvironment and its code generator.
code_generator_class
intercepted_binops
_.visit_Concat
_.checked_concat
_.unsafe_undefined
_.getitem
call
_.call_binop

# Library protocols: a prometheus_client collector, python-json-logger's required fields
# (set on the record, read by name), Starlette's and tarfile's attributes.
_.collect
_.ts
_.level
_.raw_headers
_.gname
_.uname

# Hooks that tests drive: the fake runtime's faults and counters, the app's limits.
_.setup_calls
_.closed
_.vanish
_.fail_next_start
_.break_workload
_.heal
_.request_limits
planned_experiments  # logic/sweep_plan.py: checked against hyperband's plan in tests/logic
_.is_discrete  # logic/matrix.py: part of the parameter API the tests check
experiment_spec  # logic/polyaxonfile.py: the typed spec of an experiment file, for the tests

# FastAPI reads a dependency's signature (app/deps.py sets the run id's name per kind);
# SQLAlchemy calls declared_attr directives (app/models/base.py).
__signature__
__table_args__
# Columns and response fields read by name (schemas' *_COLUMNS tuples, v0's bookmark item).
node_scheduled
content_object
ppid  # runtimes/local.py ProcStat: a field of /proc/<pid>/stat, parsed by position
# The runtime contract (tests/runtimes/test_runtime_contract.py) reads a workload's own output
# through these on every runtime; the server reads run logs from files (local) or posted lines.
read_logs
keeps_logs
