// klingq pause, resume and limits: the shared klingq.account row that every klingqd
// instance reads before it claims work.
#include "cli/context.hpp"
#include "cli/queries.hpp"

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <ostream>

namespace klingq::cli {
namespace {
constexpr const char* account_name = "default";

void note_halt(Context& context, const pqxx::result& rows) {
  if (!rows.empty() && !rows[0][0].is_null()) {
    context.err << "klingq: note: dispatch is also halted by the API: " << rows[0][0].c_str()
                << " (fix the API key; klingqd clears this)\n";
  }
}
}  // namespace

int run_pause(Context& context) {
  if (!context.arguments.operands.empty()) throw UsageError("pause takes no operands");
  auto reason = context.arguments.value("--reason");
  auto connection = context.connect();
  pqxx::work tx(*connection);
  auto rows = tx.exec_params(queries::account_pause, reason);
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
  note_halt(context, rows);
  return exit_ok;
}

int run_resume(Context& context) {
  if (!context.arguments.operands.empty()) throw UsageError("resume takes no operands");
  auto connection = context.connect();
  pqxx::work tx(*connection);
  auto rows = tx.exec(queries::account_resume);
  // Wake the dispatchers now rather than at their next safety poll.
  tx.exec_params(queries::notify_jobs, std::string("resume"));
  tx.commit();
  if (context.json()) {
    print_json(context.out, boost::json::object{{"account", account_name}, {"paused", false}});
  } else {
    context.out << "dispatch resumed\n";
  }
  note_halt(context, rows);
  return exit_ok;
}

int run_limits(Context& context) {
  if (!context.arguments.operands.empty()) throw UsageError("limits takes no operands");
  auto connection = context.connect();
  pqxx::read_transaction tx(*connection);
  auto rows = tx.exec(queries::limit_state_select);
  if (rows.empty()) {
    if (context.json()) {
      print_json(context.out, boost::json::object{{"account", nullptr}});
    } else {
      context.out << "no account row yet: klingqd creates it on its first start; until then the "
                     "configured plan's limits apply\n";
    }
    return exit_ok;
  }
  const auto& r = rows[0];
  if (context.json()) {
    auto window = [&](int limit, int remaining, int reset, int paused) {
      boost::json::object object{{"limit", json_int(r[limit])},
                                 {"reset_at", json_time(r[reset])},
                                 {"paused_until", json_time(r[paused])}};
      if (remaining >= 0) object["remaining"] = json_int(r[remaining]);
      return object;
    };
    auto rpm = window(2, 3, 4, 5);
    auto day = window(6, 8, 9, 10);
    day["used"] = json_int(r[7]);
    boost::json::object parallel{{"limit", json_int(r[11])},
                                 {"in_flight", json_int(r[12])},
                                 {"paused_until", json_time(r[13])}};
    print_json(context.out, boost::json::object{
                                {"account", r[0].c_str()},
                                {"limits_source", r[1].c_str()},
                                {"rpm", rpm},
                                {"day", day},
                                {"parallel", parallel},
                                {"in_flight", json_int(r[12])},
                                {"balance", json_int(r[14])},
                                {"balance_at", json_time(r[15])},
                                {"halted_reason", json_text(r[16])},
                                {"halted_at", json_time(r[17])},
                                {"paused", r[18].as<bool>()},
                                {"paused_reason", json_text(r[19])},
                                {"updated_at", json_time(r[20])}});
    return exit_ok;
  }
  auto limit_text = [](const pqxx::field& f) {
    if (f.is_null()) return std::string("?");
    return f.as<std::int64_t>() == 0 ? std::string("unlimited") : std::string(f.c_str());
  };
  auto time_text = [](const pqxx::field& f) { return f.is_null() ? std::string("-") : iso_time(f.c_str()); };
  context.out << "account " << r[0].c_str() << " (limits from " << r[1].c_str() << ")\n\n";
  print_table(context.out, {"window", "limit", "remaining", "used", "resets at", "paused until"},
              {{"requests/min", limit_text(r[2]), text_or(r[3], "?"), "-", time_text(r[4]), time_text(r[5])},
               {"jobs/day", limit_text(r[6]), text_or(r[8], "?"), r[7].c_str(), time_text(r[9]), time_text(r[10])},
               {"parallel", limit_text(r[11]), "-", r[12].c_str(), "-", time_text(r[13])}});
  context.out << "\nin flight: " << r[12].c_str() << "\n";
  context.out << "balance: "
              << (r[14].is_null() ? std::string("unknown")
                                  : std::string(r[14].c_str()) + " credits as of " + time_text(r[15]))
              << "\n";
  context.out << "paused: "
              << (r[18].as<bool>() ? "yes" + (r[19].is_null() ? std::string() : std::string(" (") + r[19].c_str() + ")")
                                   : std::string("no"))
              << "\n";
  if (!r[16].is_null()) {
    context.out << "HALTED: " << r[16].c_str() << " since " << time_text(r[17]) << "\n";
  }
  return exit_ok;
}

}  // namespace klingq::cli
