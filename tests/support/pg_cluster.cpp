#include "support/pg_cluster.hpp"

#include "db/migrations.hpp"

#include <pqxx/pqxx>

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace klingq::testing {
namespace {
const char* pg_bin = "/usr/lib/postgresql/15/bin";

bool running_as_root() { return geteuid() == 0; }

// Commands run as postgres when we are root (initdb refuses root).
std::string as_cluster_user(const std::string& command) {
  if (running_as_root()) return "runuser -u postgres -- " + command;
  return command;
}
}  // namespace

int run_command(const std::string& command_line) {
  int status = std::system(command_line.c_str());
  if (status == -1) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

PgCluster& PgCluster::shared() {
  static PgCluster cluster;
  return cluster;
}

PgCluster::PgCluster() {
  char pattern[] = "/tmp/klingq-test-pg-XXXXXX";
  if (!mkdtemp(pattern)) throw std::runtime_error("mkdtemp failed");
  dir_ = pattern;
  socket_dir_ = dir_;
  data_dir_ = dir_ + "/data";
  if (running_as_root()) {
    passwd* pw = getpwnam("postgres");
    if (!pw) throw std::runtime_error("no postgres user on this machine");
    if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) throw std::runtime_error("chown failed");
  }
  // The port only names the socket file inside our private directory.
  port_ = 5432;
  std::string initdb = std::string(pg_bin) + "/initdb -D " + data_dir_ +
                       " -U postgres --auth=trust -E UTF8 --no-sync --no-instructions >" +
                       dir_ + "/initdb.log 2>&1";
  if (run_command(as_cluster_user(initdb)) != 0) {
    throw std::runtime_error("initdb failed; see " + dir_ + "/initdb.log");
  }
  start();
}

void PgCluster::start() {
  std::string command = std::string(pg_bin) + "/pg_ctl -D " + data_dir_ + " -l " + dir_ +
                        "/postgres.log -w -o \"-k " + socket_dir_ + " -p " +
                        std::to_string(port_) +
                        " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                        " -c listen_addresses='' -c max_connections=200\" start >/dev/null";
  if (run_command(as_cluster_user(command)) != 0) {
    throw std::runtime_error("pg_ctl start failed; see " + dir_ + "/postgres.log");
  }
  running_ = true;
}

void PgCluster::stop() {
  if (!running_) return;
  run_command(as_cluster_user(std::string(pg_bin) + "/pg_ctl -D " + data_dir_ +
                              " -m immediate -w stop >/dev/null 2>&1"));
  running_ = false;
}

void PgCluster::stop_for_outage() {
  run_command(as_cluster_user(std::string(pg_bin) + "/pg_ctl -D " + data_dir_ +
                              " -m fast -w stop >/dev/null 2>&1"));
  running_ = false;
}
void PgCluster::start_after_outage() { start(); }
void PgCluster::restart() {
  stop_for_outage();
  start();
}

PgCluster::~PgCluster() {
  stop();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string PgCluster::url(const std::string& database) const {
  return "postgresql://postgres@/" + database + "?host=" + socket_dir_ +
         "&port=" + std::to_string(port_);
}

std::string PgCluster::fresh_database() {
  std::string name = "t" + std::to_string(getpid()) + "_" + std::to_string(++counter_);
  pqxx::connection admin(url("postgres"));
  pqxx::nontransaction tx(admin);
  tx.exec("CREATE DATABASE " + tx.quote_name(name));
  return url(name);
}

std::string PgCluster::migrated_database() {
  auto database = fresh_database();
  pqxx::connection connection(database);
  db::migrate(connection);
  return database;
}

}  // namespace klingq::testing
