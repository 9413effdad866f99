// Every statement of lib/db, by name: the text of lib/db/sql/<name>.sql, compiled in by
// lib/db/embed_statements.cmake (which fails the build when this list and the folder
// disagree). Only lib/db's own sources include this; everything else calls the typed
// functions of lib/db. The pointers are stable, so db::detail::exec prepares each
// statement once per connection under a name derived from its text.
#pragma once

namespace klingq::db::sql {

extern const char* const account_charge;
extern const char* const account_clear_halt;
extern const char* const account_clear_halt_matching;
extern const char* const account_ensure;
extern const char* const account_get_balance;
extern const char* const account_halt;
extern const char* const account_lock;
extern const char* const account_pause;
extern const char* const account_resume;
extern const char* const account_save;
extern const char* const account_set_balance;
extern const char* const batches_get_budgets_remaining;
extern const char* const batch_share_clock_get;
extern const char* const batches_deactivate_idle;
extern const char* const batches_list;
extern const char* const batches_lock;
extern const char* const batches_save_shares;
extern const char* const batches_lock_lowest_active;
extern const char* const batches_select_runnable;
extern const char* const batches_select_window;
extern const char* const batches_set;
extern const char* const batches_set_paused;
extern const char* const batches_vacuum;
extern const char* const downloads_claim;
extern const char* const downloads_get_next_due;
extern const char* const downloads_give_up_stale;
extern const char* const downloads_record_failed;
extern const char* const downloads_record_ok;
extern const char* const downloads_release;
extern const char* const downloads_release_all;
extern const char* const generation_times_refresh;
extern const char* const generation_times_select;
extern const char* const inbox_put;
extern const char* const inbox_take;
extern const char* const instances_count_live;
extern const char* const instances_delete;
extern const char* const instances_get_publisher;
extern const char* const instances_upsert;
extern const char* const job_counts_by_state;
extern const char* const job_counts_fold;
extern const char* const batch_counts_fold;
extern const char* const event_minutes_fold;
extern const char* const counts_try_lock_fold;
extern const char* const counts_vacuum;
extern const char* const job_events_insert_download;
extern const char* const jobs_cancel_by_batch;
extern const char* const jobs_cancel_by_ids;
extern const char* const jobs_claim;
extern const char* const jobs_complete;
extern const char* const jobs_count_batch_by_state;
extern const char* const jobs_count_dispatching;
extern const char* const jobs_count_in_flight;
extern const char* const jobs_count_in_flight_by_batch;
extern const char* const jobs_count_queued_by_price;
extern const char* const jobs_count_stuck;
extern const char* const jobs_count_waiting;
extern const char* const jobs_flag_stuck;
extern const char* const jobs_get_next_poll_at;
extern const char* const jobs_get_state_by_ids;
extern const char* const jobs_get_state_by_remote_id;
extern const char* const jobs_get_top_priority;
extern const char* const jobs_list;
extern const char* const jobs_mark_batch_waiting;
extern const char* const jobs_mark_credit_waiting;
extern const char* const jobs_mark_failed;
extern const char* const jobs_mark_submitted;
extern const char* const jobs_notify;
extern const char* const jobs_reap_expired;
extern const char* const jobs_release_leases;
extern const char* const jobs_requeue;
extern const char* const jobs_retry_by_ids;
extern const char* const jobs_retry_by_selection;
extern const char* const jobs_schedule_poll;
extern const char* const jobs_select_batch_heads;
extern const char* const jobs_select_claimable;
extern const char* const jobs_select_due_polls;
extern const char* const klingq_schema_create;
extern const char* const limit_state_select;
extern const char* const queue_summary_select;
extern const char* const remote_lock;
extern const char* const remote_lock_many;
extern const char* const schema_migrations_create;
extern const char* const schema_migrations_exists;
extern const char* const schema_migrations_get_version;
extern const char* const schema_migrations_insert;
extern const char* const schema_migrations_list;
extern const char* const schema_migrations_lock;


// The operator console (lib/console) and the operator actions (lib/operate).
extern const char* const account_overview;
extern const char* const batches_count_by_state;
extern const char* const batches_list_paused;
extern const char* const credits_spent_last_hour;
extern const char* const instances_list_live;
extern const char* const job_events_last_hour;
extern const char* const job_events_list_by_job;
extern const char* const jobs_get;
extern const char* const jobs_page;
extern const char* const operator_events_insert;
extern const char* const operator_events_list_by_job;
extern const char* const session_force_custom_plans;
// The console's actions on the unlabelled batch (batch NULL).
extern const char* const batches_exists;
extern const char* const jobs_cancel_unlabelled;
extern const char* const jobs_count_unlabelled_by_state;
// The console's bounded prompt search.
extern const char* const jobs_get_id_range;
extern const char* const jobs_search;
}  // namespace klingq::db::sql
