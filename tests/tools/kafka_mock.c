/* kafka_mock: librdkafka's in-process mock Kafka cluster as a standalone process, for the tests
 * (no Kafka broker can be installed on the test machines). Prints "BOOTSTRAP host:port,..." on
 * stdout once the brokers listen, then runs until SIGTERM/SIGINT.
 *
 *   kafka_mock [--brokers N] [--topic NAME --partitions P]
 *
 * The topic is created up front (auto-creation also works, with the mock's default partition
 * count) so that a test controls how many partitions the per-room keys spread over.
 *
 * Faults, one command per line on stdin (answered "OK" or "ERR ..." on stdout):
 *   produce-errors N CODE   the next N Produce requests (any broker) fail with Kafka error CODE
 *                           (e.g. 29 TOPIC_AUTHORIZATION_FAILED, a permanent error) */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

#define APIKEY_PRODUCE 0 /* Kafka protocol ApiKey of Produce */

/* One command line; answers on stdout. */
static void command(rd_kafka_mock_cluster_t *mc, const char *line)
{
    int n, code;
    if (sscanf(line, "produce-errors %d %d", &n, &code) == 2 && n > 0 && n <= 1000) {
        rd_kafka_resp_err_t errs[1000];
        for (int i = 0; i < n; i++)
            errs[i] = (rd_kafka_resp_err_t)code;
        rd_kafka_mock_push_request_errors_array(mc, APIKEY_PRODUCE, (size_t)n, errs);
        printf("OK\n");
    } else {
        printf("ERR unknown command\n");
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int brokers = 1, partitions = 4;
    const char *topic = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--brokers") == 0)
            brokers = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--topic") == 0)
            topic = argv[i + 1];
        else if (strcmp(argv[i], "--partitions") == 0)
            partitions = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: kafka_mock [--brokers N] [--topic NAME --partitions P]\n");
            return 2;
        }
    }
    if (brokers < 1 || brokers > 9 || partitions < 1 || partitions > 64) {
        fprintf(stderr, "kafka_mock: brokers 1..9, partitions 1..64\n");
        return 2;
    }
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* The mock cluster needs a client handle to live in; a producer that never produces. */
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "kafka_mock: %s\n", err);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc) {
        fprintf(stderr, "kafka_mock: cannot start the mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    if (topic) {
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, topic, partitions, 1);
        if (e) {
            fprintf(stderr, "kafka_mock: topic %s: %s\n", topic, rd_kafka_err2str(e));
            return 1;
        }
    }
    {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal; /* no SA_RESTART: a signal ends the blocking read below */
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
    }
    printf("BOOTSTRAP %s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    {
        char line[256];
        while (!stop) {
            errno = 0;
            if (fgets(line, sizeof(line), stdin)) {
                command(mc, line);
            } else if (errno != EINTR && !stop) {
                pause(); /* stdin closed: wait for the signal */
            }
        }
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
