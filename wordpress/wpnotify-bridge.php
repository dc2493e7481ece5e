<?php
/**
 * Plugin Name: wpnotify bridge
 * Description: Hands WordPress's trackback and pingback sending to the wpnotify daemon. Exposes
 *              each post's to_ping and pinged lists to editors over REST and XML-RPC, lets
 *              wpnotify record what it sent in `pinged`, and switches off core's own sending so
 *              nothing goes out twice.
 *              Since 1.2 it also keeps what wpnotify reports about each notification of a
 *              post (status rows), shows them in the editors and the posts list, and records
 *              "Send again" requests for wpnotify to take at its next poll.
 * Version:     1.2
 * Requires PHP: 7.4
 * License:     GPL-2.0-or-later
 *
 * Install as a must-use plugin: copy this file and the wpnotify-bridge/ folder beside it (the
 * editor scripts) to wp-content/mu-plugins/. Without the folder the REST parts still work.
 */

namespace Wpnotify\Bridge;

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

const VERSION = '1.2';

/*
 * 1. Core's own sending. do_all_pings runs do_all_pingbacks, do_all_enclosures,
 * do_all_trackbacks and generic_ping; wpnotify takes over the first and the third. Enclosure
 * detection is no notification, and update-service pings (generic_ping) stay with WordPress
 * until wpnotify sends them too. default-filters.php has run before must-use plugins load.
 */
remove_action( 'do_all_pings', 'do_all_pingbacks', 10 );
remove_action( 'do_all_pings', 'do_all_trackbacks', 10 );

/**
 * The two lists of one post, as wpnotify reads them.
 *
 * Both come through core's own getters, so the get_to_ping / get_pung filters still apply.
 *
 * @return array{to_ping: string[], pinged: string[], bridge: string}
 */
function pings_of( \WP_Post $post ): array {
	return array(
		'to_ping' => array_values( get_to_ping( $post ) ?: array() ),
		'pinged'  => array_values( array_filter( get_pung( $post ) ?: array(), 'strlen' ) ),
		'bridge'  => VERSION,
	);
}

/**
 * Records URLs wpnotify notified: appended to `pinged`, removed from `to_ping`.
 *
 * Unlike core's trackback(), which runs SQL REPLACE() and so mangles a queued URL that
 * contains the sent one, this removes exact list items only.
 */
function record_pinged( \WP_Post $post, array $urls ): array {
	global $wpdb;
	$urls = array_values( array_filter( array_map( 'strval', $urls ), __NAMESPACE__ . '\\is_http_url' ) );
	$new  = array_values( array_diff( $urls, pings_of( $post )['pinged'] ) );
	if ( $new ) {
		add_ping( $post, $new );
	}
	$remaining = array_values( array_diff( get_to_ping( $post ) ?: array(), $urls ) );
	$wpdb->update( $wpdb->posts, array( 'to_ping' => implode( "\n", $remaining ) ), array( 'ID' => $post->ID ) );
	clean_post_cache( $post->ID );
	return pings_of( get_post( $post->ID ) );
}

/** The post, if it exists and the current user may edit it; null otherwise. */
function editable_post( $id ): ?\WP_Post {
	$post = get_post( (int) $id );
	return $post && current_user_can( 'edit_post', $post->ID ) ? $post : null;
}

function is_http_url( string $url ): bool {
	return (bool) preg_match( '#^https?://#i', $url );
}

function status(): array {
	return array(
		'bridge'            => VERSION,
		'core_pingbacks'    => (bool) has_action( 'do_all_pings', 'do_all_pingbacks' ),
		'core_trackbacks'   => (bool) has_action( 'do_all_pings', 'do_all_trackbacks' ),
		'default_pingbacks' => (bool) get_option( 'default_pingback_flag' ),
		// Since 1.2: whether the editor scripts' folder is installed (no panel without it).
		'editor_assets'     => null !== asset( 'editor.js' ),
	);
}

/*
 * Deletions. A post deleted for good is gone from every list, so its Webmention receivers
 * could never be told. Remember the last 1000 deletions (ID, type, permalink, time) for
 * wpnotify to read; REST answers to editors carry the newest one's time in a header, so an
 * idle poll costs no extra request.
 */
add_action(
	'before_delete_post',
	function ( $post_id ) {
		$post = get_post( $post_id );
		if ( ! $post || in_array( $post->post_type, array( 'revision', 'nav_menu_item' ), true )
			|| 'auto-draft' === $post->post_status ) {
			return;
		}
		$log   = (array) get_option( 'wpnotify_deleted', array() );
		$log[] = array(
			'id'          => (int) $post->ID,
			'type'        => $post->post_type,
			'link'        => get_permalink( $post ),
			'deleted_gmt' => gmdate( 'Y-m-d\TH:i:s' ),
		);
		update_option( 'wpnotify_deleted', array_slice( $log, -1000 ), false );
	}
);

function deleted_since( string $since ): array {
	return array_values(
		array_filter(
			(array) get_option( 'wpnotify_deleted', array() ),
			function ( $entry ) use ( $since ) {
				return $entry['deleted_gmt'] > $since;
			}
		)
	);
}

add_filter(
	'rest_post_dispatch',
	function ( $response ) {
		if ( ! $response instanceof \WP_REST_Response || ! current_user_can( 'edit_posts' ) ) {
			return $response;
		}
		$log = (array) get_option( 'wpnotify_deleted', array() );
		if ( $log ) {
			$response->header( 'X-Wpnotify-Deleted', end( $log )['deleted_gmt'] );
		}
		$newest = (int) get_option( RESEND_LAST_ID, 0 );
		if ( $newest > 0 ) {
			$response->header( 'X-Wpnotify-Resend', (string) $newest );
		}
		return $response;
	}
);

/* 2. REST: a `wpnotify` field on every REST post type (context=edit), and four routes. */
add_action(
	'rest_api_init',
	function () {
		foreach ( get_post_types( array( 'show_in_rest' => true ) ) as $type ) {
			register_rest_field(
				$type,
				'wpnotify',
				array(
					'get_callback' => function ( $data ) {
						$post = editable_post( $data['id'] );
						return $post ? pings_of( $post ) + array( 'status_summary' => summary( display_rows( $post->ID ) ) ) : null;
					},
					'schema'       => array(
						'description' => 'to_ping and pinged lists, and a summary of the status rows (wpnotify bridge).',
						'type'        => array( 'object', 'null' ),
						'context'     => array( 'edit' ),
						'readonly'    => true,
					),
				)
			);
			register_to_ping_field( $type );
		}

		register_rest_route(
			'wpnotify/v1',
			'/status',
			array(
				'methods'             => 'GET',
				'permission_callback' => function () {
					return current_user_can( 'edit_posts' );
				},
				'callback'            => __NAMESPACE__ . '\\status',
			)
		);

		register_rest_route(
			'wpnotify/v1',
			'/deleted',
			array(
				'methods'             => 'GET',
				'permission_callback' => function () {
					return current_user_can( 'edit_posts' );
				},
				'args'                => array(
					'since' => array( 'type' => 'string', 'default' => '' ),
				),
				'callback'            => function ( \WP_REST_Request $request ) {
					return deleted_since( (string) $request['since'] );
				},
			)
		);

		/*
		 * Since 1.1: many posts in one request, {"posts": {"<id>": [urls]}}, so that a busy
		 * sender costs WordPress one PHP request per batch, not one per link. Posts the user
		 * may not edit, or that do not exist, are listed in `refused` and left alone.
		 */
		register_rest_route(
			'wpnotify/v1',
			'/pinged',
			array(
				'methods'             => 'POST',
				'permission_callback' => function () {
					return current_user_can( 'edit_posts' );
				},
				'args'                => array(
					'posts' => array(
						'type'     => 'object',
						'required' => true,
					),
				),
				'callback'            => function ( \WP_REST_Request $request ) {
					$recorded = 0;
					$refused  = array();
					foreach ( (array) $request['posts'] as $id => $urls ) {
						$post = get_post( (int) $id );
						if ( ! $post || ! current_user_can( 'edit_post', $post->ID ) || ! is_array( $urls ) ) {
							$refused[] = (int) $id;
							continue;
						}
						record_pinged( $post, $urls );
						++$recorded;
					}
					return array(
						'recorded' => $recorded,
						'refused'  => $refused,
					);
				},
			)
		);

		register_rest_route(
			'wpnotify/v1',
			'/posts/(?P<id>\d+)/pinged',
			array(
				'methods'             => 'POST',
				'permission_callback' => function ( \WP_REST_Request $request ) {
					return current_user_can( 'edit_post', (int) $request['id'] );
				},
				'args'                => array(
					'urls' => array(
						'type'     => 'array',
						'items'    => array( 'type' => 'string' ),
						'required' => true,
					),
				),
				'callback'            => function ( \WP_REST_Request $request ) {
					$post = get_post( (int) $request['id'] );
					if ( ! $post ) {
						return new \WP_Error( 'rest_post_invalid_id', 'Invalid post ID.', array( 'status' => 404 ) );
					}
					return record_pinged( $post, (array) $request['urls'] );
				},
			)
		);
	}
);

/* 3. XML-RPC, for sites whose REST API is off: wpnotify.getPings and wpnotify.addPinged. */
add_filter(
	'xmlrpc_methods',
	function ( array $methods ): array {
		$methods['wpnotify.status']    = __NAMESPACE__ . '\\xmlrpc_status';
		$methods['wpnotify.getPings']  = __NAMESPACE__ . '\\xmlrpc_get_pings';
		$methods['wpnotify.addPinged'] = __NAMESPACE__ . '\\xmlrpc_add_pinged';
		$methods['wpnotify.getDeleted'] = __NAMESPACE__ . '\\xmlrpc_get_deleted';
		return $methods;
	}
);

/** Logs in like core's wp.* methods: (blog_id, username, password, ...). */
function xmlrpc_post_for_editor( array $args ) {
	global $wp_xmlrpc_server;
	$user = $wp_xmlrpc_server->login( (string) ( $args[1] ?? '' ), (string) ( $args[2] ?? '' ) );
	if ( ! $user ) {
		return $wp_xmlrpc_server->error;
	}
	$post = get_post( (int) ( $args[3] ?? 0 ) );
	if ( ! $post ) {
		return new \IXR_Error( 404, 'Invalid post ID.' );
	}
	if ( ! current_user_can( 'edit_post', $post->ID ) ) {
		return new \IXR_Error( 401, 'Sorry, you are not allowed to edit this post.' );
	}
	return $post;
}

function xmlrpc_status( $args ) {
	global $wp_xmlrpc_server;
	$args = (array) $args;
	if ( ! $wp_xmlrpc_server->login( (string) ( $args[1] ?? '' ), (string) ( $args[2] ?? '' ) ) ) {
		return $wp_xmlrpc_server->error;
	}
	return status();
}

function xmlrpc_get_pings( $args ) {
	$post = xmlrpc_post_for_editor( (array) $args );
	return $post instanceof \WP_Post ? pings_of( $post ) : $post;
}

function xmlrpc_add_pinged( $args ) {
	$args = (array) $args;
	$post = xmlrpc_post_for_editor( $args );
	return $post instanceof \WP_Post ? record_pinged( $post, (array) ( $args[4] ?? array() ) ) : $post;
}

function xmlrpc_get_deleted( $args ) {
	global $wp_xmlrpc_server;
	$args = (array) $args;
	if ( ! $wp_xmlrpc_server->login( (string) ( $args[1] ?? '' ), (string) ( $args[2] ?? '' ) ) ) {
		return $wp_xmlrpc_server->error;
	}
	if ( ! current_user_can( 'edit_posts' ) ) {
		return new \IXR_Error( 401, 'Sorry, you are not allowed to edit posts.' );
	}
	return deleted_since( (string) ( $args[3] ?? '' ) );
}

/*
 * 4. Status rows (since 1.2). wpnotify pushes, per post, one row per notification (kind,
 * target, status, the receiver's answer...); the bridge keeps them in the protected post meta
 * `_wpnotify_status` (the underscore keeps it out of core's REST `meta` and the Custom Fields
 * box; the auth filter below makes it uneditable there too) and shows them to users who may
 * edit the post. The rows come from receivers' answers, so they are hostile input: only known
 * keys and statuses are kept, strings are cut to size and every value is escaped on output.
 */
const STATUS_META     = '_wpnotify_status';
const MAX_ROWS        = 200;
const MAX_POSTS       = 100;
const STATUSES        = array( 'pending', 'sending', 'sent', 'failed', 'skipped' );
const RESENDABLE      = array( 'failed', 'skipped' );
const RESEND_LOG      = 'wpnotify_resend';
const RESEND_LAST_ID  = 'wpnotify_resend_last_id';
const RESEND_SEEN     = 'wpnotify_resend_seen';
const RESEND_KEEP     = 1000;

add_filter( 'auth_post_meta_' . STATUS_META, '__return_false' );
add_filter(
	'is_protected_meta',
	function ( $protected, $key ) {
		return STATUS_META === $key ? true : $protected;
	},
	10,
	2
);

/** A string cut to $max characters on one line, or null for what is no string. */
function clip( $value, int $max ): ?string {
	if ( ! is_string( $value ) && ! is_int( $value ) && ! is_float( $value ) ) {
		return null;
	}
	$text = wp_check_invalid_utf8( (string) $value, true );
	$text = trim( (string) preg_replace( '/[\x00-\x1F\x7F]+/', ' ', $text ) );
	return mb_substr( $text, 0, $max, 'UTF-8' );
}

function iso_or_null( $value ): ?string {
	return is_string( $value ) && preg_match( '/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/', $value ) ? $value : null;
}

/**
 * One pushed row with only the contract's keys, or null to drop it: an unknown status (the
 * bridge could not show it honestly), or no kind or target (nothing to show or send again).
 */
function clean_row( $row ): ?array {
	if ( ! is_array( $row ) || ! in_array( $row['status'] ?? null, STATUSES, true ) ) {
		return null;
	}
	$kind   = clip( $row['kind'] ?? null, 32 );
	$target = clip( $row['target'] ?? null, 2000 );
	if ( ! $kind || ! $target ) {
		return null;
	}
	$answer = clip( $row['answer'] ?? null, 300 );
	$code   = clip( $row['code'] ?? null, 64 );
	return array(
		'kind'       => $kind,
		'target'     => $target,
		'endpoint'   => clip( $row['endpoint'] ?? null, 2000 ) ?: null,
		'status'     => $row['status'],
		'attempts'   => is_numeric( $row['attempts'] ?? null ) ? max( 0, min( 1000000, (int) $row['attempts'] ) ) : 0,
		'answer'     => '' === $answer ? null : $answer,
		'code'       => '' === $code ? null : $code,
		'sent_at'    => iso_or_null( $row['sent_at'] ?? null ),
		'next_at'    => iso_or_null( $row['next_at'] ?? null ),
		'updated_at' => iso_or_null( $row['updated_at'] ?? null ),
	);
}

/** Replaces a post's rows as a whole: the first MAX_ROWS good ones. */
function store_rows( int $post_id, array $rows ): void {
	$clean = array_slice( array_values( array_filter( array_map( __NAMESPACE__ . '\\clean_row', $rows ) ) ), 0, MAX_ROWS );
	if ( $clean ) {
		update_post_meta( $post_id, STATUS_META, wp_slash( $clean ) );  // update_metadata unslashes
	} else {
		delete_post_meta( $post_id, STATUS_META );
	}
}

function stored_rows( int $post_id ): array {
	$rows = get_post_meta( $post_id, STATUS_META, true );
	return is_array( $rows ) ? array_values( array_filter( $rows, 'is_array' ) ) : array();
}

/**
 * The rows as the editors show them: each with the time of its newest Send again request
 * (null if none is remembered), and "queued" while that request is newer than what wpnotify
 * said it has taken (resend_seen). $log defaults to the stored requests.
 */
function display_rows( int $post_id, ?array $log = null ): array {
	$asked = array();
	foreach ( $log ?? resend_log() as $request ) {
		if ( (int) $request['post'] === $post_id ) {
			$asked[ $request['kind'] . "\n" . $request['target'] ] = $request;
		}
	}
	$seen = (int) get_option( RESEND_SEEN, 0 );
	$rows = array();
	foreach ( stored_rows( $post_id ) as $row ) {
		$request                 = $asked[ $row['kind'] . "\n" . $row['target'] ] ?? null;
		$row['resend_requested'] = $request ? $request['requested_gmt'] : null;
		if ( $request && (int) $request['id'] > $seen ) {
			$row['status'] = 'queued';
		}
		$rows[] = $row;
	}
	return $rows;
}

/** sent, failed and waiting (pending, sending, queued); skipped rows count in none. */
function summary( array $rows ): array {
	$counts = array( 'sent' => 0, 'failed' => 0, 'waiting' => 0 );
	foreach ( $rows as $row ) {
		if ( 'sent' === $row['status'] || 'failed' === $row['status'] ) {
			++$counts[ $row['status'] ];
		} elseif ( in_array( $row['status'], array( 'pending', 'sending', 'queued' ), true ) ) {
			++$counts['waiting'];
		}
	}
	return $counts;
}

/*
 * Send again requests live in the option `wpnotify_resend` (the newest RESEND_KEEP), each with
 * an id wpnotify uses as a cursor (resend_seen). Two editors clicking at once must neither
 * get the same id nor overwrite each other's request, and an id must never be visible (in
 * X-Wpnotify-Resend) before its request can be read, or wpnotify would skip it for good. So a
 * request is appended under a MariaDB/MySQL named lock (GET_LOCK, per database and table
 * prefix), reading the log and the counter from the database, not from a cache that another
 * request may have made stale; the counter `wpnotify_resend_last_id` moves only after the
 * request is stored. A counter apart from the log keeps ids increasing when old requests are
 * trimmed away. An atomic UPDATE with LAST_INSERT_ID alone would give unique ids but could
 * still lose one of two appends to the same option value; a table of its own would need
 * creating and upgrading, which a drop-in must-use plugin would rather not do.
 */
function resend_log(): array {
	return array_values( array_filter( (array) get_option( RESEND_LOG, array() ), 'is_array' ) );
}

function raw_option( string $name ) {
	global $wpdb;
	return maybe_unserialize( $wpdb->get_var( $wpdb->prepare( "SELECT option_value FROM {$wpdb->options} WHERE option_name = %s", $name ) ) );
}

/** Writes an option past the object cache (under the lock), then drops the cached copies. */
function write_raw_option( string $name, $value ): bool {
	global $wpdb;
	$done = $wpdb->query(
		$wpdb->prepare(
			"INSERT INTO {$wpdb->options} (option_name, option_value, autoload) VALUES (%s, %s, 'no') ON DUPLICATE KEY UPDATE option_value = VALUES(option_value)",
			$name,
			maybe_serialize( $value )
		)
	);
	wp_cache_delete( $name, 'options' );
	$missing = wp_cache_get( 'notoptions', 'options' );
	if ( is_array( $missing ) && isset( $missing[ $name ] ) ) {
		unset( $missing[ $name ] );
		wp_cache_set( 'notoptions', $missing, 'options' );
	}
	return false !== $done;
}

/**
 * Records a Send again request for a row that exists and failed or was skipped; answers the
 * row as route 2 shows it, or a WP_Error (404, 409 also for a post not public, 503).
 */
function request_resend( \WP_Post $post, string $kind, string $target ) {
	global $wpdb;
	// wpnotify notifies from published posts only: a trackback sent again from a post made
	// private, a draft or trashed since would carry its title and excerpt to the receiver.
	if ( 'publish' !== $post->post_status || '' !== (string) $post->post_password ) {
		return new \WP_Error( 'wpnotify_not_public', 'Only a published post without a password can send again.', array( 'status' => 409 ) );
	}
	$lock = 'wpnotify_resend_' . md5( DB_NAME . '|' . $wpdb->prefix );  // lock names: <= 64 chars
	if ( '1' !== (string) $wpdb->get_var( $wpdb->prepare( 'SELECT GET_LOCK(%s, 10)', $lock ) ) ) {
		return new \WP_Error( 'wpnotify_busy', 'Too many Send again requests at once; try again.', array( 'status' => 503 ) );
	}
	try {
		$log = array_values( array_filter( (array) ( raw_option( RESEND_LOG ) ?: array() ), 'is_array' ) );
		$row = find_row( display_rows( $post->ID, $log ), $kind, $target );
		if ( ! $row ) {
			return new \WP_Error( 'wpnotify_no_such_row', 'This post has no such link or trackback.', array( 'status' => 404 ) );
		}
		if ( ! in_array( $row['status'], RESENDABLE, true ) ) {
			return new \WP_Error( 'wpnotify_not_resendable', "Only a failed or skipped notification can be sent again (this one is {$row['status']}).", array( 'status' => 409 ) );
		}
		$id    = max( (int) raw_option( RESEND_LAST_ID ), $log ? (int) end( $log )['id'] : 0 ) + 1;
		$log[] = array(
			'id'            => $id,
			'post'          => (int) $post->ID,
			'kind'          => $row['kind'],
			'target'        => $row['target'],
			'requested_gmt' => gmdate( 'Y-m-d\TH:i:s\Z' ),
		);
		if ( ! write_raw_option( RESEND_LOG, array_slice( $log, -RESEND_KEEP ) ) || ! write_raw_option( RESEND_LAST_ID, $id ) ) {
			return new \WP_Error( 'wpnotify_not_stored', 'The request could not be stored.', array( 'status' => 500 ) );
		}
		return find_row( display_rows( $post->ID, $log ), $kind, $target );
	} finally {
		$wpdb->query( $wpdb->prepare( 'SELECT RELEASE_LOCK(%s)', $lock ) );
	}
}

function find_row( array $rows, string $kind, string $target ): ?array {
	foreach ( $rows as $row ) {
		if ( $row['kind'] === $kind && $row['target'] === $target ) {
			return $row;
		}
	}
	return null;
}

/** Requests newer than $since for posts the current user may edit, oldest first. */
function resend_since( int $since ): array {
	$found = array();
	foreach ( resend_log() as $request ) {
		if ( (int) $request['id'] > $since && current_user_can( 'edit_post', (int) $request['post'] ) ) {
			$found[] = $request;
		}
	}
	usort( $found, fn( $a, $b ) => (int) $a['id'] <=> (int) $b['id'] );
	return $found;
}

/** Route 1: many posts' rows in one request, and how far wpnotify has taken Send again. */
function push_statuses( \WP_REST_Request $request ) {
	$posts = $request['posts'];
	if ( ! is_array( $posts ) ) {
		return new \WP_Error( 'rest_invalid_param', 'posts must be an object of post ID => rows.', array( 'status' => 400 ) );
	}
	if ( count( $posts ) > MAX_POSTS ) {
		return new \WP_Error( 'wpnotify_too_many_posts', sprintf( 'At most %d posts per request.', MAX_POSTS ), array( 'status' => 400 ) );
	}
	$recorded = 0;
	$refused  = array();
	foreach ( $posts as $id => $rows ) {
		$post = get_post( (int) $id );
		if ( ! $post || ! current_user_can( 'edit_post', $post->ID ) || ! is_array( $rows ) ) {
			$refused[] = (int) $id;
			continue;
		}
		store_rows( $post->ID, $rows );
		++$recorded;
	}
	/*
	 * resend_seen is site-wide and only grows: an author (who may push rows for their own
	 * posts) must not move it, or every queued row of the site would show as taken, and
	 * could be sent again at will, for good. Only a user who may edit others' posts (as
	 * wpnotify's account must) moves it, and never past the newest request made.
	 */
	$seen = $request['resend_seen'];
	if ( is_numeric( $seen ) && current_user_can( 'edit_others_posts' ) ) {
		$seen = min( (int) $seen, (int) get_option( RESEND_LAST_ID, 0 ) );
		if ( $seen > (int) get_option( RESEND_SEEN, 0 ) ) {
			update_option( RESEND_SEEN, $seen );
		}
	}
	return array(
		'recorded' => $recorded,
		'refused'  => $refused,
	);
}

/**
 * Permission for the per-post routes: a missing post is a 404 for editors (a 403 or 401 for
 * others, who learn nothing), an existing one needs edit_post.
 */
function may_edit_requested_post( \WP_REST_Request $request ) {
	$post = get_post( (int) $request['id'] );
	if ( ! $post ) {
		return current_user_can( 'edit_posts' )
			? new \WP_Error( 'rest_post_invalid_id', 'Invalid post ID.', array( 'status' => 404 ) )
			: false;
	}
	return current_user_can( 'edit_post', $post->ID );
}

function post_status_answer( \WP_Post $post ): array {
	$rows = display_rows( $post->ID );
	return array(
		'post'    => (int) $post->ID,
		'rows'    => $rows,
		'summary' => summary( $rows ),
		'bridge'  => VERSION,
	);
}

/**
 * to_ping as the block editor's "Send trackbacks to" field writes it: core's rules
 * (sanitize_trackback_urls: split on whitespace, URLs only), http(s) only, no URL twice, and
 * none the post has pinged already. Written straight to the column, as record_pinged does.
 */
function write_to_ping( \WP_Post $post, string $value ): void {
	global $wpdb;
	$urls   = preg_split( '/\s+/', sanitize_trackback_urls( $value ), -1, PREG_SPLIT_NO_EMPTY );
	$pinged = pings_of( $post )['pinged'];
	$keep   = array();
	foreach ( $urls as $url ) {
		if ( is_http_url( $url ) && ! in_array( $url, $pinged, true ) && ! in_array( $url, $keep, true ) ) {
			$keep[] = $url;
		}
	}
	$wpdb->update( $wpdb->posts, array( 'to_ping' => implode( "\n", $keep ) ), array( 'ID' => $post->ID ) );
	clean_post_cache( $post->ID );
}

/** Where the rows are shown: post types in REST with an admin screen and an editor. */
function shown_post_types(): array {
	return array_values(
		array_filter(
			get_post_types( array( 'show_in_rest' => true, 'show_ui' => true ) ),
			fn( $type ) => 'wp_block' !== $type && post_type_supports( $type, 'editor' )
		)
	);
}

/** The writable `wpnotify_to_ping` field of a REST post type: the block editor's "Send trackbacks to". */
function register_to_ping_field( string $type ): void {
	register_rest_field(
		$type,
		'wpnotify_to_ping',
		array(
			'get_callback'    => function ( $data ) {
				$post = editable_post( $data['id'] );
				return $post ? implode( "\n", pings_of( $post )['to_ping'] ) : null;
			},
			'update_callback' => function ( $value, $object ) {
				if ( null === $value ) {
					return true;  // null leaves the list as it is
				}
				$post = editable_post( $object->ID ?? 0 );
				if ( ! $post ) {
					return new \WP_Error( 'rest_cannot_edit', 'Sorry, you are not allowed to edit this post.', array( 'status' => rest_authorization_required_code() ) );
				}
				write_to_ping( $post, (string) $value );
				return true;
			},
			'schema'          => array(
				'description' => 'URLs to send trackbacks to, one a line (to_ping; wpnotify bridge).',
				'type'        => array( 'string', 'null' ),
				'context'     => array( 'edit' ),
			),
		)
	);
}

add_action(
	'rest_api_init',
	function () {
		$may_edit_posts = function () {
			return current_user_can( 'edit_posts' );
		};
		register_rest_route(
			'wpnotify/v1',
			'/statuses',
			array(
				'methods'             => 'POST',
				'permission_callback' => $may_edit_posts,
				'args'                => array(
					'posts'       => array( 'required' => true ),
					'resend_seen' => array( 'type' => 'integer', 'minimum' => 0 ),
				),
				'callback'            => __NAMESPACE__ . '\\push_statuses',
			)
		);
		register_rest_route(
			'wpnotify/v1',
			'/posts/(?P<id>\d+)/status',
			array(
				'methods'             => 'GET',
				'permission_callback' => __NAMESPACE__ . '\\may_edit_requested_post',
				'callback'            => function ( \WP_REST_Request $request ) {
					return post_status_answer( get_post( (int) $request['id'] ) );
				},
			)
		);
		register_rest_route(
			'wpnotify/v1',
			'/posts/(?P<id>\d+)/resend',
			array(
				'methods'             => 'POST',
				'permission_callback' => __NAMESPACE__ . '\\may_edit_requested_post',
				'args'                => array(
					'kind'   => array( 'type' => 'string', 'required' => true ),
					'target' => array( 'type' => 'string', 'required' => true ),
				),
				'callback'            => function ( \WP_REST_Request $request ) {
					return request_resend( get_post( (int) $request['id'] ), (string) $request['kind'], (string) $request['target'] );
				},
			)
		);
		register_rest_route(
			'wpnotify/v1',
			'/resend',
			array(
				'methods'             => 'GET',
				'permission_callback' => $may_edit_posts,
				'args'                => array(
					'since' => array( 'type' => 'integer', 'default' => 0, 'minimum' => 0 ),
				),
				'callback'            => function ( \WP_REST_Request $request ) {
					return resend_since( (int) $request['since'] );
				},
			)
		);
	}
);

/*
 * 5. In wp-admin (since 1.2): the rows in a classic-editor meta box beside core's trackback
 * box, a compact "Links" column in the posts list, and the block editor's panel (editor.js,
 * when the wpnotify-bridge/ folder is installed beside this file).
 */

/** URL and version (its mtime) of a file in wpnotify-bridge/, or null when it is missing. */
function asset( string $name ): ?array {
	$path = __DIR__ . '/wpnotify-bridge/' . $name;
	if ( ! is_file( $path ) ) {
		return null;
	}
	return array( plugins_url( 'wpnotify-bridge/' . $name, __FILE__ ), (string) filemtime( $path ) );
}

/** "3 sent · 1 failed · 2 waiting", the non-zero parts only, or an em dash. */
function summary_text( array $counts ): string {
	$parts = array();
	foreach ( $counts as $label => $count ) {
		if ( $count > 0 ) {
			$parts[] = sprintf( '%d %s', $count, $label );
		}
	}
	return $parts ? implode( ' · ', $parts ) : '—';
}

/** An ISO 8601 UTC time in the site's date and time format, for people. */
function local_time( ?string $iso ): string {
	$stamp = $iso ? strtotime( $iso ) : false;
	return $stamp ? wp_date( get_option( 'date_format' ) . ' ' . get_option( 'time_format' ), $stamp ) : '';
}

/** A kind's or a status's name for people, as the block editor's panel shows it. */
function label( string $name ): string {
	$labels = array(
		'pingback'      => __( 'Pingback', 'wpnotify' ),
		'trackback'     => __( 'Trackback', 'wpnotify' ),
		'webmention'    => __( 'Webmention', 'wpnotify' ),
		'weblogupdates' => __( 'Update service', 'wpnotify' ),
		'sent'          => __( 'Sent', 'wpnotify' ),
		'failed'        => __( 'Failed', 'wpnotify' ),
		'skipped'       => __( 'Skipped', 'wpnotify' ),
		'pending'       => __( 'Waiting', 'wpnotify' ),
		'sending'       => __( 'Sending', 'wpnotify' ),
		'queued'        => __( 'Queued', 'wpnotify' ),
	);
	return $labels[ $name ] ?? $name;
}

/** One row of the meta box; every value escaped (they come from receivers' answers). */
function render_row( int $post_id, array $row ): void {
	$when = $row['sent_at'] ?? $row['updated_at'];
	echo '<tr class="wpnotify-row" data-post="' . esc_attr( (string) $post_id ) . '" data-kind="'
		. esc_attr( $row['kind'] ) . '" data-target="' . esc_attr( $row['target'] ) . '">';
	echo '<td class="wpnotify-kind">' . esc_html( label( $row['kind'] ) ) . '</td>';
	echo '<td class="wpnotify-target">';
	if ( is_http_url( $row['target'] ) ) {
		echo '<a href="' . esc_url( $row['target'] ) . '" rel="noopener noreferrer">' . esc_html( $row['target'] ) . '</a>';
	} else {
		echo esc_html( $row['target'] );
	}
	echo '</td><td><span class="wpnotify-badge wpnotify-status-' . esc_attr( $row['status'] ) . '">'
		. esc_html( label( $row['status'] ) ) . '</span></td>';
	echo '<td class="wpnotify-answer">' . esc_html( (string) $row['answer'] )
		. ( $row['code'] ? ' <code>' . esc_html( $row['code'] ) . '</code>' : '' ) . '</td>';
	echo '<td class="wpnotify-time">' . ( $when ? '<time datetime="' . esc_attr( $when ) . '">'
		. esc_html( local_time( $when ) ) . '</time>' : '' ) . '</td>';
	echo '<td class="wpnotify-attempts">' . esc_html( (string) (int) $row['attempts'] ) . '</td><td>';
	if ( in_array( $row['status'], RESENDABLE, true ) ) {
		echo '<button type="button" class="button button-small wpnotify-resend">' . esc_html__( 'Send again', 'wpnotify' ) . '</button>';
	}
	echo '</td></tr>';
}

function render_meta_box( \WP_Post $post ): void {
	if ( ! current_user_can( 'edit_post', $post->ID ) ) {
		return;
	}
	$rows = display_rows( $post->ID );
	if ( ! $rows ) {
		echo '<p class="wpnotify-empty">' . esc_html__( 'wpnotify has reported nothing for this post yet. Links and trackbacks show here after its next poll.', 'wpnotify' ) . '</p>';
		return;
	}
	echo '<p class="wpnotify-summary">' . esc_html( summary_text( summary( $rows ) ) ) . '</p>';
	echo '<table class="widefat striped wpnotify-rows"><thead><tr>';
	foreach ( array( 'Kind', 'Target', 'Status', 'Answer', 'Time', 'Attempts', '' ) as $head ) {
		echo '<th scope="col">' . esc_html( $head ) . '</th>';
	}
	echo '</tr></thead><tbody>';
	foreach ( $rows as $row ) {
		render_row( $post->ID, $row );
	}
	echo '</tbody></table>';
}

add_action(
	'add_meta_boxes',
	function ( $post_type ) {
		if ( in_array( $post_type, shown_post_types(), true ) ) {
			// __back_compat_meta_box: classic editor only; the block editor has the panel.
			add_meta_box( 'wpnotify-links', 'Links and trackbacks (wpnotify)', __NAMESPACE__ . '\\render_meta_box', $post_type, 'normal', 'core', array( '__back_compat_meta_box' => true ) );
		}
	}
);

add_action(
	'admin_init',
	function () {
		foreach ( shown_post_types() as $type ) {
			add_filter(
				"manage_{$type}_posts_columns",
				function ( $columns ) {
					return $columns + array( 'wpnotify_links' => esc_html__( 'Links', 'wpnotify' ) );
				}
			);
			add_action(
				"manage_{$type}_posts_custom_column",
				function ( $column, $post_id ) {
					if ( 'wpnotify_links' === $column && current_user_can( 'edit_post', $post_id ) ) {
						echo '<span class="wpnotify-links">' . esc_html( summary_text( summary( display_rows( (int) $post_id ) ) ) ) . '</span>';
					}
				},
				10,
				2
			);
		}
	}
);

/** The classic screens' styles: editor.css (the badges, shared with the panel) and classic.css. */
function enqueue_classic_styles(): void {
	foreach ( array( 'editor', 'classic' ) as $name ) {
		$style = asset( "$name.css" );
		if ( $style ) {
			wp_enqueue_style( "wpnotify-$name", $style[0], array(), $style[1] );
		}
	}
}

add_action(
	'admin_enqueue_scripts',
	function ( $hook ) {
		$screen = get_current_screen();
		if ( ! $screen || ! in_array( $screen->post_type, shown_post_types(), true ) ) {
			return;
		}
		if ( 'edit.php' === $hook ) {
			enqueue_classic_styles();
		}
		if ( ! in_array( $hook, array( 'post.php', 'post-new.php' ), true ) || $screen->is_block_editor() ) {
			return;
		}
		$script = asset( 'classic.js' );
		if ( $script ) {
			wp_enqueue_script( 'wpnotify-classic', $script[0], array( 'wp-api-fetch' ), $script[1], true );
		}
		enqueue_classic_styles();
	}
);

add_action(
	'enqueue_block_editor_assets',
	function () {
		$screen = get_current_screen();
		$script = asset( 'editor.js' );
		if ( ! $script || ( $screen && ! in_array( $screen->post_type, shown_post_types(), true ) ) ) {
			return;
		}
		// PluginDocumentSettingPanel is in wp.editor since 6.6, in wp.editPost before.
		$deps = array( 'wp-plugins', 'wp-edit-post', 'wp-element', 'wp-components', 'wp-data', 'wp-api-fetch', 'wp-i18n', 'wp-core-data' );
		if ( wp_script_is( 'wp-editor', 'registered' ) ) {
			$deps[] = 'wp-editor';
		}
		wp_enqueue_script( 'wpnotify-editor', $script[0], $deps, $script[1], true );
		wp_add_inline_script( 'wpnotify-editor', 'window.wpnotifyBridge = ' . wp_json_encode( array( 'version' => VERSION ) ) . ';', 'before' );
		$style = asset( 'editor.css' );
		if ( $style ) {
			wp_enqueue_style( 'wpnotify-editor', $style[0], array(), $style[1] );
		}
	}
);
