/* config.h - every setting of chatd, in one table.
 *
 * Precedence: command-line flag > environment variable (CHATD_<NAME>) > config file
 * (--config FILE or CHATD_CONFIG; lines "name = value", '#' comments, or one JSON object) >
 * built-in default.
 * `chatd --help` prints this table, so the documentation and the parser cannot disagree.
 */
#ifndef CD_CONFIG_H
#define CD_CONFIG_H

#include <stdint.h>
#include <stdio.h>

/* X(field, flag, type, default, help). type: STR or INT (64-bit) or BOOL (on/off, true/false,
 * 1/0, yes/no). Flag names use dashes; the environment variable is CHATD_ + upper-case field. */
#define CFG_MAP(X)                                                                                 \
    X(listen, "listen", STR, "0.0.0.0:8080", "address and port to listen on")                      \
    X(data_dir, "data-dir", STR, "./chatd-data", "directory of the database and key files")        \
    X(store_url, "store-url", STR, "",                                                             \
      "storage: empty = SQLite in --data-dir; postgres://... or postgresql://... = PostgreSQL")    \
    X(node_id, "node-id", STR, "", "this node's name in a cluster; empty = <hostname>-<pid>")      \
    X(sqlite_sync, "sqlite-sync", STR, "full",                                                     \
      "SQLite synchronous mode in WAL: full (fsync every commit) or normal")                       \
    X(commit_interval_us, "commit-interval-us", INT, "1000",                                       \
      "least microseconds between two group commits' starts under load (0 = none, max 1000000)")   \
    X(wal_restart_frames, "wal-restart-frames", INT, "32768",                                      \
      "WAL frames after which a continuously loaded writer restarts the WAL (pauses a few ms)")    \
    X(threads, "threads", INT, "0", "I/O threads (event loops); 0 = one per CPU core")             \
    X(log_level, "log-level", STR, "info", "debug, info, warn or error")                           \
    X(jwt_keys, "jwt-keys", STR, "",                                                               \
      "HS256 keys 'kid:64hex[,kid:64hex]' (first signs); empty = generated in data-dir")           \
    X(access_ttl, "access-ttl", INT, "900", "access token lifetime, seconds")                      \
    X(token_leeway, "token-leeway", INT, "30",                                                     \
      "clock skew allowed on access-token times, seconds (0-300); a WebSocket closes 4002 then")   \
    X(refresh_ttl, "refresh-ttl", INT, "2592000", "refresh token lifetime, seconds")               \
    X(pwhash_ops, "pwhash-ops", INT, "2", "Argon2id passes (libsodium OPSLIMIT_INTERACTIVE = 2)")  \
    X(pwhash_mem_kib, "pwhash-mem-kib", INT, "65536",                                              \
      "Argon2id memory, KiB (libsodium MEMLIMIT_INTERACTIVE = 64 MiB)")                            \
    X(http_max_header, "http-max-header", INT, "8192", "max bytes of request line + headers")      \
    X(http_max_headers, "http-max-headers", INT, "64", "max number of request headers")            \
    X(http_max_body, "http-max-body", INT, "65536", "max request body, bytes")                     \
    X(http_timeout, "http-timeout", INT, "10", "seconds to receive a whole request (slowloris)")   \
    X(http_keepalive, "http-keepalive", INT, "60", "idle keep-alive connection timeout, seconds")  \
    X(ws_max_frame, "ws-max-frame", INT, "65536", "max WebSocket frame payload, bytes")            \
    X(ws_max_message, "ws-max-message", INT, "65536", "max WebSocket message, bytes")              \
    X(ws_idle, "ws-idle", INT, "60",                                                               \
      "WebSocket idle timeout, seconds: ping after half, close 4000 after all")                    \
    X(ws_max_outq, "ws-max-outq", INT, "4194304",                                                  \
      "max queued output per connection, bytes; over it: close 4008")                              \
    X(ws_max_inflight, "ws-max-inflight", INT, "64",                                               \
      "requests (send, read) awaiting storage per connection before it is not read (2-65535)")     \
    X(ws_max_inflight_total, "ws-max-inflight-total", INT, "65536",                                \
      "requests awaiting storage over all WebSockets of the node before senders wait (>= 1)")      \
    X(max_conns, "max-conns", INT, "100000", "max open connections per node")                      \
    X(max_body_text, "max-message-body", INT, "16384", "max chat message body, bytes")             \
    X(rate_limits, "rate-limits", BOOL, "on",                                                      \
      "enforce rate limits (off only for benchmarks; caps and quotas still apply)")                \
    X(auth_rate, "auth-rate", INT, "5",                                                            \
      "login/register attempts per second per client IP (burst 4x); failed logins per "            \
      "(username, IP): burst 1x, rate /10; per username: burst 4x, rate /5, refusing only IPs "    \
      "that failed for it")                                                                        \
    X(msg_rate, "msg-rate", INT, "20", "messages per second per user")                             \
    X(msg_burst, "msg-burst", INT, "50", "message burst per user")                                 \
    X(typing_rate, "typing-rate", INT, "2", "typing events per second per user and room")          \
    X(room_rate, "room-rate", INT, "2",                                                            \
      "room creations, member additions, direct-chat opens, joins, invites, profile updates, "     \
      "contact and block additions per second per user (burst 10x)")                               \
    X(max_owned_rooms, "max-owned-rooms", INT, "100",                                              \
      "group rooms one user may own (quota, applies with --rate-limits off too; 0 = none)")        \
    X(max_room_members, "max-room-members", INT, "10000",                                          \
      "members of one group room (quota; 0 = none)")                                               \
    X(max_rooms_per_user, "max-rooms-per-user", INT, "2000",                                       \
      "group rooms one user may be a member of; nobody can add them to more (quota; 0 = none)")    \
    X(max_new_dms, "max-new-dms", INT, "100",                                                      \
      "direct chats one user may create per hour, refilled continuously (quota; 0 = none)")        \
    X(user_search_rate, "user-search-rate", INT, "5",                                              \
      "GET /v1/users?prefix= searches per second per user (burst 4x)")                             \
    X(read_rate, "read-rate", INT, "10", "WebSocket read requests per second per user (burst 5x)") \
    X(unread_max, "unread-max", INT, "1000",                                                       \
      "log entries after a read marker that an unread count looks at; past them: unread_capped")   \
    X(sync_max, "sync-max", INT, "10000",                                                          \
      "messages one sync replays per room before answering has_more")                              \
    X(presence_max_room, "presence-max-room", INT, "200",                                          \
      "rooms with more members get no presence events (bounds the cost of a change)")              \
    X(max_conns_per_user, "max-conns-per-user", INT, "32",                                         \
      "open WebSocket connections per user (0 = no cap; applies with --rate-limits off too)")      \
    X(drain_timeout, "drain-timeout", INT, "10", "seconds SIGTERM waits for connections to close") \
    X(nats_url, "nats-url", STR, "",                                                               \
      "NATS servers for cross-node fanout, comma-separated nats://host:port; empty = single node") \
    X(reconcile_ms, "reconcile-ms", INT, "2000",                                                   \
      "cluster: ms between checks of each room's head in storage (bounds a lost bus message)")     \
    X(redis_url, "redis-url", STR, "",                                                             \
      "Redis for presence across nodes, redis://host:port[/db]; empty = this node's view only")    \
    X(presence_ttl_ms, "presence-ttl-ms", INT, "10000",                                            \
      "cluster: a dead node's users go offline after about this + a third of it (>= 1000)")        \
    X(web, "web", BOOL, "on", "serve the web client at / (embedded in the binary, or --web-dir)")  \
    X(web_dir, "web-dir", STR, "",                                                                 \
      "serve the web client from this directory instead (read once at start)")                     \
    X(allowed_origins, "allowed-origins", STR, "",                                                 \
      "other web origins (scheme://host[:port], comma-separated, or *) allowed to use the "        \
      "REST API (CORS) and open WebSockets; empty = same origin only")                             \
    X(roles, "roles", STR, "all",                                                                  \
      "what this process runs, comma-separated: gateway (HTTP, WebSocket), relay, notifier, "      \
      "exporter, indexer; all = every one. Without gateway only /healthz, /readyz, /metrics "      \
      "are served")                                                                                \
    X(server_rate, "server-rate", INT, "100",                                                      \
      "server API (/v1/server/...) requests per second per API key (burst 2x)")                    \
    X(events_wait_max, "events-wait-max", INT, "30",                                               \
      "longest long-poll of GET /v1/server/events?wait=, seconds (1-300)")                         \
    X(webhook_url, "webhook-url", STR, "",                                                         \
      "default webhook endpoint (http:// or https://) for outbox events; empty = none")            \
    X(webhook_secret, "webhook-secret", STR, "",                                                   \
      "HMAC-SHA256 key signing webhook and notification requests (required with a webhook URL)")   \
    X(webhook_types, "webhook-types", STR, "*",                                                    \
      "event types the default webhook receives, comma-separated (message,member,room,...; * = "   \
      "all)")                                                                                      \
    X(webhook_max_attempts, "webhook-max-attempts", INT, "20",                                     \
      "delivery attempts before a webhook delivery is dead-lettered (1-100)")                      \
    X(webhook_retry_base_ms, "webhook-retry-base-ms", INT, "10000",                                \
      "first webhook retry delay, ms; doubles per attempt, jittered to 50-100%")                   \
    X(webhook_retry_max_ms, "webhook-retry-max-ms", INT, "3600000",                                \
      "longest webhook retry delay, ms (with the defaults the last retry is ~9-17 h later)")       \
    X(webhook_timeout_ms, "webhook-timeout-ms", INT, "10000",                                      \
      "webhook request timeout (connect and answer), ms (100-120000)")                             \
    X(webhook_poll_ms, "webhook-poll-ms", INT, "1000",                                             \
      "ms between looks for due webhook deliveries when nothing woke the engine (10-60000)")       \
    X(webhook_retention, "webhook-retention", INT, "259200",                                       \
      "seconds a delivered webhook row is kept before it is pruned (1-31536000); dead letters "    \
      "stay until replayed or deleted")                                                            \
    X(notify_webhook_url, "notify-webhook-url", STR, "",                                           \
      "notifier: endpoint of offline notifications (signed with --webhook-secret); empty = none")  \
    X(notify_window_ms, "notify-window-ms", INT, "60000",                                          \
      "notifier: at most one notification per user and room in this many ms")                      \
    X(notify_excerpt, "notify-excerpt", INT, "140",                                                \
      "notifier: max bytes of message text in a notification (cut on a UTF-8 boundary, 1-4096)")   \
    X(kafka_brokers, "kafka-brokers", STR, "",                                                     \
      "exporter: Kafka bootstrap servers host:port[,host:port]; empty = no Kafka export")          \
    X(kafka_topic, "kafka-topic", STR, "chatd.events", "exporter: Kafka topic of the events")      \
    X(jetstream_stream, "jetstream-stream", STR, "CHATD_EVENTS",                                   \
      "relay: JetStream stream (subjects chatd.events.>) created if missing")                      \
    X(jetstream_replicas, "jetstream-replicas", INT, "0",                                          \
      "relay: replicas of a stream it creates (0 = the NATS servers known, at most 3)")            \
    X(max_upload, "max-upload", INT, "26214400", "max bytes of one upload (POST /v1/uploads)")     \
    X(upload_types, "upload-types", STR,                                                           \
      "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain",                      \
      "content types accepted for uploads, comma-separated (type/* accepts a whole type)")         \
    X(upload_ttl, "upload-ttl", INT, "86400",                                                      \
      "seconds after which an upload that no message references is deleted")                       \
    X(upload_sweep, "upload-sweep", INT, "60",                                                     \
      "seconds between two sweeps for expired uploads (>= 1)")                                     \
    X(upload_rate, "upload-rate", INT, "2", "uploads per second per user (burst 10x)")             \
    X(blob_url, "blob-url", STR, "",                                                               \
      "attachment storage: empty = files in data-dir/blobs; "                                      \
      "s3://bucket?endpoint=http://host:port&region=us-east-1 = an S3-compatible server")          \
    X(blob_access_key, "blob-access-key", STR, "",                                                 \
      "S3 access key id; empty = the environment's AWS_ACCESS_KEY_ID")                             \
    X(blob_secret_key, "blob-secret-key", STR, "",                                                 \
      "S3 secret access key; empty = the environment's AWS_SECRET_ACCESS_KEY")                     \
    X(search_rate, "search-rate", INT, "5", "searches per second per user (burst 4x)")             \
    X(search_index_ms, "search-index-ms", INT, "200",                                              \
      "ms between two runs of the search indexer (the most a new message waits to be "             \
      "found)")                                                                                    \
    X(metrics_listen, "metrics-listen", STR, "",                                                   \
      "serve /metrics on this separate address:port only (e.g. 127.0.0.1:9090), not on --listen; " \
      "empty = on --listen")                                                                       \
    X(trusted_proxies, "trusted-proxies", STR, "",                                                 \
      "reverse proxies (CIDRs, comma-separated, e.g. 127.0.0.1/32,10.0.0.0/8) whose Forwarded / "  \
      "X-Forwarded-For name the client (rate limits, logs); empty = trust none")

struct cfg {
#define CFG_FIELD_STR(name)                     char *name;
#define CFG_FIELD_INT(name)                     int64_t name;
#define CFG_FIELD_BOOL(name)                    int name;
#define CFG_FIELD(field, flag, type, def, help) CFG_FIELD_##type(field)
    CFG_MAP(CFG_FIELD)
#undef CFG_FIELD
    char *config_file;   /* --config / CHATD_CONFIG, NULL if none */
    unsigned roles_mask; /* --roles parsed (roles/roles.h enum roles_bit) */
};

enum cfg_result { CFG_OK = 0, CFG_EXIT_OK = 1, CFG_ERROR = -1 };

/* Largest value of the byte limits that size a connection's buffers and queues (--http-max-header,
 * --http-max-body, --ws-max-frame, --ws-max-message, --ws-max-outq; --http-max-headers is at most
 * 65536): their counters are 32-bit. cfg_load refuses larger values. */
#define CFG_MAX_BYTES (INT64_C(1) << 30)

/* Fill c from defaults, the config file, the environment `envp` (NULL = none) and argv, in
 * precedence order. Returns CFG_OK; CFG_EXIT_OK after printing --help or --version to out;
 * CFG_ERROR after printing a one-line reason to err (unknown flag, bad number, unreadable file,
 * a limit over its range).
 * The strings in c are heap copies; release them with cfg_free. */
int cfg_load(struct cfg *c, int argc, char **argv, char **envp, FILE *out, FILE *err);
void cfg_free(struct cfg *c);
/* Apply the settings of a config file's text (len bytes, not NUL-terminated: lines "name = value",
 * blank lines and '#' comments; a value may be in double quotes) to c, over what it holds. name
 * labels the error messages. Returns 0, or -1 after printing "name:line: reason" to err at the
 * first bad line (no '=', unknown setting, bad value, NUL byte); the lines before it are applied.
 * Lines have no length limit. cfg_load reads --config files of up to CFG_FILE_MAX bytes with it. */
#define CFG_FILE_MAX (1 << 20)
int cfg_parse(struct cfg *c, const char *text, size_t len, const char *name, FILE *err);
/* The same settings as a JSON object: {"listen": "127.0.0.1:8080", "msg-rate": 20, "web": true}.
 * Keys are the flag names (dashes or underscores); a value is a string, or for integer settings a
 * non-negative integer, or for on/off settings true or false (strings are accepted as in the
 * line format). Duplicate keys, nested values, null and unknown keys are errors. Returns 0, or
 * -1 after printing "name: reason" to err; the members before the bad one are applied.
 * cfg_load reads a --config file as JSON when its first non-blank byte is '{'. */
int cfg_parse_json(struct cfg *c, const char *text, size_t len, const char *name, FILE *err);
void cfg_usage(FILE *out);
/* Every setting of c as config-file lines ("name = value"), secrets redacted: --jwt-keys
 * entirely, the password of every URL setting (--store-url, --nats-url, --redis-url). */
void cfg_print(const struct cfg *c, FILE *out);

#endif
