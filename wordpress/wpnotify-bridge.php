<?php
/**
 * Plugin Name: wpnotify bridge
 * Description: Hands WordPress's trackback and pingback sending to the wpnotify daemon. Exposes
 *              each post's to_ping and pinged lists to editors over REST and XML-RPC, lets
 *              wpnotify record what it sent in `pinged`, and switches off core's own sending so
 *              nothing goes out twice.
 * Version:     1.1
 * License:     GPL-2.0-or-later
 *
 * Install as a must-use plugin: copy this file to wp-content/mu-plugins/.
 */

namespace Wpnotify\Bridge;

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

const VERSION = '1.1';

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

function is_http_url( string $url ): bool {
	return (bool) preg_match( '#^https?://#i', $url );
}

function status(): array {
	return array(
		'bridge'            => VERSION,
		'core_pingbacks'    => (bool) has_action( 'do_all_pings', 'do_all_pingbacks' ),
		'core_trackbacks'   => (bool) has_action( 'do_all_pings', 'do_all_trackbacks' ),
		'default_pingbacks' => (bool) get_option( 'default_pingback_flag' ),
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
		$log = (array) get_option( 'wpnotify_deleted', array() );
		if ( $log && $response instanceof \WP_REST_Response && current_user_can( 'edit_posts' ) ) {
			$response->header( 'X-Wpnotify-Deleted', end( $log )['deleted_gmt'] );
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
						$post = get_post( $data['id'] );
						if ( ! $post || ! current_user_can( 'edit_post', $post->ID ) ) {
							return null;
						}
						return pings_of( $post );
					},
					'schema'       => array(
						'description' => 'to_ping and pinged lists (wpnotify bridge).',
						'type'        => array( 'object', 'null' ),
						'context'     => array( 'edit' ),
						'readonly'    => true,
					),
				)
			);
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
