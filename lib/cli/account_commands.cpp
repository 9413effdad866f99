// klingq pause, resume and limits: the shared klingq.account row that every klingqd
// instance reads before it claims work. The statements are lib/db's (db/operator.hpp).
#include "cli/context.hpp"

#include "db/jobs.hpp"
#include "db/operator.hpp"
#include "operate/operate.hpp"

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <cstdio>
#include <ostream>

namespace klingq::cli {
namespace {
constexpr const char* account_name = "default";

void note_halt(Context& context, const std::optional<std::string>& halted_reason) {
  if (halted_reason) {
    context.err << "klingq: note: dispatch is also halted by the API: " << *halted_reason
                << " (fix the API key; klingqd clears this)\n";
  }
}
}  // namespace

int run_pause(Context& context) {
  if (!context.arguments.operands.empty()) throw UsageError("pause takes no operands");
  auto reason = context.arguments.value("--reason");
  auto connection = context.connect();
  pqxx::work tx(*connection);
  auto halted_reason = operate::pause(tx, operate::cli_actor(reason)).halted_reason;
  tx.commit();
  if (context.json()) {
    print_json(context.out, boost::json::object{
                                {"account", account_name},
                                {"paused", true},
                                {"reason", reason ? boost::json::value(*reason) : boost::json::value(nullptr)}});
  } else {
    context.out << "dispatch paused" << (reason ? " (" + *reason + ")" : std::string())
                << "; submitted jobs still complete. `klingq resume` to continue.\n";
  }
  note_halt(context, halted_reason);
  return exit_ok;
}

int run_resume(Context& context) {
  if (!context.arguments.operands.empty()) throw UsageError("resume takes no operands");
  auto connection = context.connect();
  pqxx::work tx(*connection);
  auto halted_reason = operate::resume(tx, operate::cli_actor(context.arguments.value("--reason"))).halted_reason;
  tx.commit();
  if (context.json()) {
    print_json(context.out, boost::json::object{{"account", account_name}, {"paused", false}});
  } else {
    context.out << "dispatch resumed\n";
  }
  note_halt(context, halted_reason);
  return exit_ok;
}

int run_limits(Context& context) {
  if (!context.arguments.operands.empty()) throw UsageError("limits takes no operands");
  auto connection = context.connect();
  pqxx::read_transaction tx(*connection);
  auto state = db::account_admin::limit_state(tx);
  if (!state) {
    if (context.json()) {
      print_json(context.out, boost::json::object{{"account", nullptr}});
    } else {
      context.out << "no account row yet: klingqd creates it on its first start; until then the "
                     "configured plan's limits apply\n";
    }
    return exit_ok;
  }
  const auto& r = *state;
  if (context.json()) {
    auto window = [](std::int64_t limit, const std::optional<std::int64_t>& remaining,
                     const std::optional<std::string>& reset, const std::optional<std::string>& paused) {
      return boost::json::object{{"limit", limit},
                                 {"reset_at", json_time(reset)},
                                 {"paused_until", json_time(paused)},
                                 {"remaining", json_int(remaining)}};
    };
    auto rpm = window(r.rpm_limit, r.rpm_remaining, r.rpm_reset_at, r.rpm_paused_until);
    auto day = window(r.day_limit, r.day_remaining, r.day_reset_at, r.day_paused_until);
    day["used"] = r.day_used;
    day["starts_at_ms_after_utc_midnight"] = json_int(r.day_start_ms);
    day["reset_reported"] = r.day_reset_reported;
    boost::json::object parallel{{"limit", r.parallel_limit},
                                 {"in_flight", r.in_flight},
                                 {"paused_until", json_time(r.parallel_paused_until)}};
    print_json(context.out, boost::json::object{
                                {"account", r.account},
                                {"limits_source", r.limits_source},
                                {"rpm", rpm},
                                {"day", day},
                                {"parallel", parallel},
                                {"in_flight", r.in_flight},
                                {"balance", json_int(r.balance)},
                                {"balance_at", json_time(r.balance_at)},
                                {"halted_reason", json_text(r.halted_reason)},
                                {"halted_at", json_time(r.halted_at)},
                                {"paused", r.paused},
                                {"paused_reason", json_text(r.paused_reason)},
                                {"updated_at", json_time(r.updated_at)}});
    return exit_ok;
  }
  auto limit_text = [](std::int64_t limit) { return limit == 0 ? std::string("unlimited") : std::to_string(limit); };
  auto time_text = [](const std::optional<std::string>& t) { return t ? iso_time(*t) : std::string("-"); };
  context.out << "account " << r.account << " (limits from " << r.limits_source << ")\n\n";
  print_table(context.out, {"window", "limit", "remaining", "used", "resets at", "paused until"},
              {{"requests/min", limit_text(r.rpm_limit), text_or(r.rpm_remaining, "?"), "-", time_text(r.rpm_reset_at),
                time_text(r.rpm_paused_until)},
               {"jobs/day", limit_text(r.day_limit), text_or(r.day_remaining, "?"), std::to_string(r.day_used),
                time_text(r.day_reset_at), time_text(r.day_paused_until)},
               {"parallel", limit_text(r.parallel_limit), "-", std::to_string(r.in_flight), "-",
                time_text(r.parallel_paused_until)}});
  // Where the provider's day begins: a Reset-Day header says so; else the hour learned
  // from the API's own count; else limits.day_starts_at or 00:00 UTC is assumed.
  context.out << "\nday: ";
  if (r.day_reset_reported) {
    context.out << "resets when the API's Reset-Day header says\n";
  } else if (r.day_start_ms) {
    const auto minutes = *r.day_start_ms / 60000;
    char hhmm[8];
    std::snprintf(hhmm, sizeof hhmm, "%02lld:%02lld", static_cast<long long>(minutes / 60),
                  static_cast<long long>(minutes % 60));
    context.out << "begins at " << hhmm << " UTC (learned from the API's count)\n";
  } else {
    context.out << "begins at limits.day_starts_at, else 00:00 UTC (assumed: nothing learned yet)\n";
  }
  context.out << "in flight: " << std::to_string(r.in_flight) << "\n";
  context.out << "balance: "
              << (r.balance ? std::to_string(*r.balance) + " credits as of " + time_text(r.balance_at)
                            : std::string("unknown"))
              << "\n";
  context.out << "paused: "
              << (r.paused ? "yes" + (r.paused_reason ? " (" + *r.paused_reason + ")" : std::string())
                           : std::string("no"))
              << "\n";
  if (r.halted_reason) {
    context.out << "HALTED: " << *r.halted_reason << " since " << time_text(r.halted_at) << "\n";
  }
  return exit_ok;
}

}  // namespace klingq::cli
