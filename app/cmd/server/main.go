// Command server runs the availability and pairing service.
//
//	server                      serve (configuration from the environment)
//	server migrate              apply pending migrations and exit
//	server admin create --phone P --password X [--name N]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/dig"
	"go.uber.org/fx"

	"github.com/halobestie/mitra-availability/app"
	"github.com/halobestie/mitra-availability/app/config"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const usage = `usage:
  server                                              serve
  server migrate                                      apply pending migrations and exit
  server admin create --phone P --password X [--name N]  create an admin and exit
Configuration comes from the environment; see README.md.`

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "server: %v\n", rootCause(err))
		return 1
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return fail(err)
	}
	log, flushLog := app.NewLogger(cfg.AppEnv, cfg.LogLevel)
	defer flushLog() // the buffered lines, on every way out

	switch {
	case len(args) == 0 || (len(args) == 1 && args[0] == "serve"):
		log.Info("garbage collector", "gc_percent", app.TuneGC(getenv))
		return serve(cfg, log, fail)
	case len(args) == 1 && args[0] == "migrate":
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := app.Migrate(ctx, cfg, log); err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, "migrations applied")
		return 0
	case len(args) >= 2 && args[0] == "admin" && args[1] == "create":
		fs := flag.NewFlagSet("admin create", flag.ContinueOnError)
		fs.SetOutput(stderr)
		phone := fs.String("phone", "", "E.164 phone number of the admin")
		pw := fs.String("password", "", "password (at least 8 characters)")
		name := fs.String("name", "Admin", "display name")
		if err := fs.Parse(args[2:]); err != nil {
			return 2
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		id, err := app.CreateAdmin(ctx, cfg, log, *phone, *pw, *name)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "admin created: id=%s phone=%s\n", id, *phone)
		return 0
	case len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help"):
		fmt.Fprintln(stdout, usage)
		return 0
	default:
		fmt.Fprintln(stderr, usage)
		return 2
	}
}

func serve(cfg config.Config, log *slog.Logger, fail func(error) int) int {
	fxApp := fx.New(app.Options(cfg, log), fx.StartTimeout(2*time.Minute), fx.StopTimeout(cfg.ShutdownTimeout))
	if err := fxApp.Err(); err != nil {
		return fail(err)
	}
	startCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := fxApp.Start(startCtx); err != nil {
		return fail(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	log.Info("shutting down", "signal", s.String())
	stopCtx, cancelStop := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancelStop()
	if err := fxApp.Stop(stopCtx); err != nil {
		return fail(err)
	}
	log.Info("stopped")
	return 0
}

// rootCause strips fx's and dig's wrapping so the one line names the variable.
func rootCause(err error) error {
	var ce *config.Error
	if errors.As(err, &ce) {
		return ce
	}
	return dig.RootCause(err)
}
